//! Authentication: token extraction, JWT verification against JWKS keys, the verified-token
//! cache. Produces an `Identity` or a 401 reason.

pub mod identity;
