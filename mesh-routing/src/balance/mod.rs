//! Load balancers (SEMANTICS DR-6..DR-10, OD-10). Filled in by the balancer work.
