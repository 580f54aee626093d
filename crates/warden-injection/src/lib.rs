//! warden-injection (under construction)
