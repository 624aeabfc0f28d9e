//! knhk-spec: definition formats in and out.
