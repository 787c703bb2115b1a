//! Address ranges in CIDR notation, for the proxies an operator trusts:
//! the `ptth` library's, which `expose --allow-ip` uses too.

pub use ptth::guard::Cidr;
