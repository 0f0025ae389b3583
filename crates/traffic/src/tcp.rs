//! TCP reassembly. IMPLEMENTATION PENDING (being written in parallel).
