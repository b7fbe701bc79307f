//! The stylesheet and the script, compiled into the binary (no CDN, no
//! build step: the dashboard works on an air-gapped site).

use rust_embed::Embed;

#[derive(Embed)]
#[folder = "assets/"]
struct Files;

/// An embedded file's bytes and content type, by file name
/// (`style.css`, `dashboard.js`); `None` for any other name.
pub fn asset(name: &str) -> Option<(std::borrow::Cow<'static, [u8]>, &'static str)> {
    let file = Files::get(name)?;
    let content_type = match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "application/octet-stream",
    };
    Some((file.data, content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stylesheet_and_script_are_embedded_and_nothing_else_is_served() {
        let (css, css_type) = asset("style.css").expect("style.css");
        assert!(css_type.starts_with("text/css"));
        assert!(String::from_utf8_lossy(&css).contains("prefers-color-scheme: dark"));
        assert!(asset("dashboard.js").is_some());
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("nothing.css").is_none());
    }
}
