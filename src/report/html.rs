//! Renders a [`Page`] as one self-contained HTML5 file: inline CSS and inline SVG, no script and
//! no network access. The markup is also well-formed XML, so tests parse it with an XML parser.
//! Hovering a heat-map cell shows its value through the SVG `<title>` of the cell; the question
//! selector is CSS-only (radio buttons and `:checked`).

use super::page::{Block, Cell, Figure, Page, Picker, Section, Table};
use super::svg::escape_xml;
use std::fmt::Write;

/// Most options a picker can show (the CSS has one rule per option index).
pub const MAX_PICKER_OPTIONS: usize = 16;

/// The whole page as HTML.
pub fn render(page: &Page) -> String {
    let mut s = String::with_capacity(1 << 20);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\" xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n");
    for (name, content) in &page.meta {
        let _ = writeln!(s, "<meta name=\"{}\" content=\"{}\"/>", escape_xml(name), escape_xml(content));
    }
    let _ = writeln!(s, "<title>{}</title>\n<style>{}</style>\n</head>\n<body>", escape_xml(&page.title), css());
    let _ = writeln!(s, "<header><h1>{}</h1><p class=\"subtitle\">{}</p>", escape_xml(&page.title), escape_xml(&page.subtitle));
    s.push_str(&toc(&page.sections));
    s.push_str("</header>\n<main>\n");
    let mut fig_no = 0;
    for (i, sec) in page.sections.iter().enumerate() {
        section(&mut s, i + 1, sec, &mut fig_no);
    }
    s.push_str("</main>\n</body>\n</html>\n");
    s
}

fn toc(sections: &[Section]) -> String {
    let items: String =
        sections.iter().map(|s| format!("<li><a href=\"#{}\">{}</a></li>", escape_xml(&s.id), escape_xml(&s.title))).collect();
    format!("<nav><ol>{items}</ol></nav>\n")
}

fn section(s: &mut String, number: usize, sec: &Section, fig_no: &mut usize) {
    let _ = writeln!(s, "<section id=\"{}\">\n<h2>{number}. {}</h2>", escape_xml(&sec.id), escape_xml(&sec.title));
    for b in &sec.blocks {
        block(s, b, fig_no);
    }
    s.push_str("</section>\n");
}

fn block(s: &mut String, b: &Block, fig_no: &mut usize) {
    match b {
        Block::Text(t) => {
            let _ = writeln!(s, "<p>{}</p>", escape_xml(t));
        }
        Block::Note(t) => {
            let _ = writeln!(s, "<p class=\"note\">{}</p>", escape_xml(t));
        }
        Block::List(items) => {
            let li: String = items.iter().map(|i| format!("<li>{}</li>", escape_xml(i))).collect();
            let _ = writeln!(s, "<ul>{li}</ul>");
        }
        Block::Pre(t) => {
            let _ = writeln!(s, "<pre>{}</pre>", escape_xml(t));
        }
        Block::Figure(f) => figure(s, f, fig_no),
        Block::Table(t) => table(s, t),
        Block::Picker(p) => picker(s, p, fig_no),
    }
}

fn figure(s: &mut String, f: &Figure, fig_no: &mut usize) {
    *fig_no += 1;
    let _ = writeln!(
        s,
        "<figure id=\"fig-{}\" class=\"figure\">\n{}\n<figcaption><b>Figure {}.</b> {}</figcaption>\n</figure>",
        escape_xml(&f.name),
        f.svg,
        fig_no,
        escape_xml(&f.caption)
    );
}

fn table(s: &mut String, t: &Table) {
    let head: String = t.head.iter().map(|h| format!("<th>{}</th>", escape_xml(h))).collect();
    s.push_str("<div class=\"table\"><table>\n");
    let _ = writeln!(s, "<caption>{}</caption>", escape_xml(&t.caption));
    if t.head.iter().any(|h| !h.is_empty()) {
        let _ = writeln!(s, "<thead><tr>{head}</tr></thead>");
    }
    s.push_str("<tbody>\n");
    for row in &t.rows {
        let cells: String = row.iter().map(|c| format!("<td>{}</td>", cell(c))).collect();
        let _ = writeln!(s, "<tr>{cells}</tr>");
    }
    s.push_str("</tbody></table></div>\n");
}

/// A cell's text with the marked characters wrapped in `<mark>`.
fn cell(c: &Cell) -> String {
    c.text
        .chars()
        .enumerate()
        .map(|(i, ch)| {
            let e = escape_xml(&ch.to_string());
            if c.marked.contains(&i) {
                format!("<mark class=\"wrong\">{e}</mark>")
            } else {
                e
            }
        })
        .collect()
}

fn picker(s: &mut String, p: &Picker, fig_no: &mut usize) {
    let id = escape_xml(&p.id);
    let _ = writeln!(s, "<div class=\"picker\" id=\"{id}\">\n<p class=\"prompt\">{}</p>", escape_xml(&p.prompt));
    for (i, (label, _)) in p.options.iter().enumerate().take(MAX_PICKER_OPTIONS) {
        let checked = if i == 0 { " checked=\"checked\"" } else { "" };
        let _ = writeln!(
            s,
            "<input type=\"radio\" name=\"{id}\" id=\"{id}-{i}\"{checked}/><label for=\"{id}-{i}\">{}</label>",
            escape_xml(label)
        );
    }
    s.push_str("<div class=\"panes\">\n");
    for (i, (label, figs)) in p.options.iter().enumerate().take(MAX_PICKER_OPTIONS) {
        let _ = writeln!(s, "<div class=\"pane\" id=\"{id}-{i}-pane\" title=\"{}\">", escape_xml(label));
        figs.iter().for_each(|f| figure(s, f, fig_no));
        s.push_str("</div>\n");
    }
    s.push_str("</div>\n</div>\n");
}

/// The style sheet: readable on a laptop, printable, and the picker's show/hide rules.
fn css() -> String {
    let mut c = String::from(
        "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;margin:0;line-height:1.45;background:#fafafa}\
header,main{max-width:1100px;margin:0 auto;padding:0 24px}\
header{padding-top:16px}h1{margin:8px 0 2px;font-size:1.7em}.subtitle{color:#555;margin:0 0 8px}\
nav ol{columns:2;margin:6px 0 12px;padding-left:22px}nav a{color:#0b5394;text-decoration:none}\
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:6px 20px 14px;margin:14px 0}\
h2{font-size:1.3em;border-bottom:1px solid #eee;padding-bottom:4px}\
figure{margin:14px 0;display:inline-block;vertical-align:top;max-width:100%}\
figure svg{max-width:100%;height:auto;display:block}\
figcaption{font-size:0.88em;color:#444;max-width:680px;margin-top:4px}\
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:8px 12px}\
pre{background:#f4f4f4;padding:10px;overflow-x:auto;font-size:0.9em}\
.table{overflow-x:auto}table{border-collapse:collapse;font-size:0.9em;margin:8px 0}\
caption{caption-side:bottom;text-align:left;font-size:0.88em;color:#444;padding-top:4px}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f0f0f0}\
td{font-family:ui-monospace,Menlo,Consolas,monospace}\
mark.wrong{background:#d62728;color:#fff;font-weight:bold;padding:0 1px}\
.picker input{position:absolute;opacity:0;width:1px;height:1px}\
.picker label{display:inline-block;border:1px solid #bbb;border-radius:4px;padding:2px 8px;margin:2px;cursor:pointer;font-family:ui-monospace,Menlo,Consolas,monospace}\
.picker input:checked+label{background:#0b5394;color:#fff;border-color:#0b5394}\
.picker input:focus-visible+label{outline:2px solid #e0b000}\
.pane{display:none}\
@media print{body{background:#fff}section{break-inside:avoid-page;border:none}nav{display:none}}",
    );
    for i in 1..=MAX_PICKER_OPTIONS {
        let _ = write!(c, ".picker input:nth-of-type({i}):checked~.panes .pane:nth-of-type({i}){{display:block}}");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::page::Figure;

    #[test]
    fn page_is_well_formed_and_marks_wrong_digits() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg"><rect class="bar" x="0" y="0" width="1" height="1"/></svg>"#;
        let mut sec = Section::new("a", "A & B");
        sec.push(Block::Figure(Figure::new("f one", svg.into(), "caption <x>")));
        let t = Table { head: vec!["q".into()], rows: vec![vec![Cell { text: "0123".into(), marked: vec![1, 3] }]], caption: "c".into() };
        sec.push(Block::Table(t));
        let page = Page { title: "t".into(), subtitle: "s".into(), sections: vec![sec], meta: vec![("k".into(), "\"v\"".into())] };
        let html = render(&page);
        let opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
        let doc = roxmltree::Document::parse_with_options(&html, opts).expect("well-formed");
        let marks: Vec<&str> = doc.descendants().filter(|n| n.has_tag_name("mark")).filter_map(|n| n.text()).collect();
        assert_eq!(marks, ["1", "3"]);
        assert!(doc.descendants().any(|n| n.has_tag_name("figcaption")));
        assert!(html.contains("id=\"fig-f_one\""));
        let meta = doc.descendants().find(|n| n.attribute("name") == Some("k")).expect("the meta entry");
        assert_eq!(meta.attribute("content"), Some("\"v\""));
    }
}
