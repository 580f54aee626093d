//! warden-proxy (under construction)
