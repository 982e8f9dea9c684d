//! kpbt-tracker library (being written).
