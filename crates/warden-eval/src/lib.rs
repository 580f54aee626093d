//! warden-eval (under construction)
