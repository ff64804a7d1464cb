//! `landfall status`: the facts of `GET /api/status` in the terminal (to be written).
