//! The prompt-like workload shared by the criterion bench and the
//! instruction-count profiling example.

/// Typical prompt fragments, none of them an injection.
pub const SNIPPETS: &[&str] = &[
    "Hi team, can you summarise the attached quarterly report and list the three biggest risks? Thanks, Maria.",
    "Please translate the following paragraph into German: The shipment left the warehouse on Tuesday and should arrive by Friday.",
    "I'm getting `TypeError: cannot read properties of undefined (reading 'map')` in my React component when the API returns an empty list.",
    "Write a SQL query that returns the top 10 customers by revenue in 2023, joined with their region, ordered descending.",
    "{\"role\":\"user\",\"content\":\"What's the weather in Lisbon tomorrow? I need to decide whether to bring an umbrella.\"}",
    "Draft a polite email to a supplier explaining that invoice INV-20931 was paid twice and asking for a refund of the duplicate amount.",
    "Explain the difference between TCP and UDP to a new engineer, with one example of when to use each.",
    "Our order has 3 items: cable A12, adapter B7 and the 4K monitor; the laptop runs macOS 14 on an M2 chip.",
    "Merci beaucoup — the invoice for Müller GmbH is attached, please check the “due date” field. Grüße, José.",
    "Customer says: the app crashes when I upload a photo larger than 10 MB on Android 14. Steps: open gallery, pick photo, tap upload.",
];

/// Snippets joined by newlines up to `target` bytes.
pub fn corpus(target: usize) -> String {
    let mut s = String::with_capacity(target + 256);
    let mut i = 0;
    while s.len() < target {
        s.push_str(SNIPPETS[i % SNIPPETS.len()]);
        s.push('\n');
        i += 1;
    }
    s
}
