//! Scenario tests of the coordinator, driven with request structs.
