//! Compiled request matchers (SEMANTICS VS-2..VS-12). Filled in by the matcher work.
