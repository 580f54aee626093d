//! warden-policy (under construction)
