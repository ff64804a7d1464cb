//! Landfall.
