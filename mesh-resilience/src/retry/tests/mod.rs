//! Unit tests of the retry module, one file per source file (SEMANTICS §3 rule ids in test
//! names).

mod layer;
mod policy;
mod replay;
