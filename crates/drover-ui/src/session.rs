//! The names the login session and its forms share with the server.
//!
//! The session cookie holds the ACL token's secret (HttpOnly, so no script
//! reads it; SameSite=Strict, so no other site's page sends it). Every
//! form carries [`CSRF_FIELD`], a value derived from the cookie that only
//! a page this server rendered can know; the server recomputes it and
//! refuses a post without it (drover-api's `routes/ui`).

/// The cookie that carries the session's token.
pub const COOKIE: &str = "drover_session";

/// The hidden form field with the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
