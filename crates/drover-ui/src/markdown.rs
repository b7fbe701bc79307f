//! Runbooks, written in Markdown, as HTML a page may embed: CommonMark with
//! tables, strikethrough and task lists. What a runbook says is shown, never
//! run: raw HTML in it is shown as text, and a link or image whose address
//! has a scheme other than `http`, `https` or `mailto` (`javascript:`,
//! `data:`) points nowhere. Images become links (an air-gapped site's
//! browser would not reach them, and a runbook is read for its words).

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// The HTML of `markdown`.
pub fn to_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            Event::Start(Tag::Link { link_type, dest_url: safe_url(dest_url), title, id })
        }
        Event::Start(Tag::Image { dest_url, title, id, .. }) => {
            Event::Start(Tag::Link { link_type: LinkType::Inline, dest_url: safe_url(dest_url), title, id })
        }
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// `url`, or `#` when it names a scheme a runbook may not use.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let scheme_end = url.find(':');
    let path_start = url.find(['/', '?', '#']);
    let has_scheme = matches!((scheme_end, path_start), (Some(colon), Some(path)) if colon < path)
        || matches!((scheme_end, path_start), (Some(_), None));
    if !has_scheme {
        return url;
    }
    let scheme = url[..scheme_end.unwrap_or(0)].trim().to_ascii_lowercase();
    if matches!(scheme.as_str(), "http" | "https" | "mailto") { url } else { CowStr::Borrowed("#") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runbook_reads_as_html() {
        let html = to_html(
            "# Disk full\n\n1. Run `df -h`\n2. Clean **/scratch**\n\n| mount | limit |\n|---|---|\n| /scratch | 90% |\n\n- [x] paged\n",
        );
        assert!(html.contains("<h1>Disk full</h1>"), "{html}");
        assert!(html.contains("<li>Run <code>df -h</code></li>"), "{html}");
        assert!(html.contains("<strong>/scratch</strong>"), "{html}");
        assert!(html.contains("<table>") && html.contains("<td>/scratch</td>"), "{html}");
        assert!(html.contains(r#"<input disabled="" type="checkbox" checked=""/>"#), "{html}");
    }

    #[test]
    fn html_and_scripts_in_a_runbook_are_shown_not_run() {
        let html = to_html(
            "<script>alert(1)</script>\n\nSee <b onclick=\"x()\">this</b>, [a](javascript:alert(1)), [b](JavaScript:x), \
             ![c](data:image/png;base64,AAA), [d](https://wiki.example/disk), [e](/ui/alerts), [f](mailto:ops@example.org), \
             [g](runbooks/disk.md#step:2)",
        );
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<b onclick") && html.contains("&lt;b onclick="), "{html}");
        assert!(!html.to_lowercase().contains("javascript:") && !html.contains("data:image"), "{html}");
        assert!(html.contains(r##"<a href="#">a</a>"##) && html.contains(r##"<a href="#">b</a>"##), "{html}");
        assert!(html.contains(r##"<a href="#">c</a>"##), "an image becomes a link: {html}");
        assert!(html.contains(r#"<a href="https://wiki.example/disk">d</a>"#), "{html}");
        assert!(html.contains(r#"<a href="/ui/alerts">e</a>"#), "{html}");
        assert!(html.contains(r#"<a href="mailto:ops@example.org">f</a>"#), "{html}");
        assert!(
            html.contains(r#"<a href="runbooks/disk.md#step:2">g</a>"#),
            "a colon after the path is no scheme: {html}"
        );
    }
}
