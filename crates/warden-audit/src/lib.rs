//! warden-audit (under construction)
