//! supervise (to be written).
