//! warden-py (under construction)
