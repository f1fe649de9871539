//! Model round trips over the example files in tests/data/model.
