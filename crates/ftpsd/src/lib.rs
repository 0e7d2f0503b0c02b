//! ftpsd (to be written).
