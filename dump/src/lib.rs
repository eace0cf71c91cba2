//! cbdump (being written).
