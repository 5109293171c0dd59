//! The report's document model: sections made of figures, tables, notes and question pickers,
//! independent of how they are rendered (see `report::html`).

/// One figure: an SVG plus what it shows and how it was measured.
#[derive(Clone, Debug)]
pub struct Figure {
    /// File stem under `RUN_DIR/figures/` (letters, digits, `-` and `_`).
    pub name: String,
    /// The standalone SVG document.
    pub svg: String,
    /// What the figure shows and how it was measured (plain text).
    pub caption: String,
}

impl Figure {
    /// A figure named `name` (sanitised to a file stem).
    pub fn new(name: &str, svg: String, caption: impl Into<String>) -> Figure {
        let name = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        Figure { name, svg, caption: caption.into() }
    }
}

/// A table of plain-text cells; a cell may mark characters to highlight.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Column headings.
    pub head: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<Cell>>,
    /// What the table lists and how it was measured.
    pub caption: String,
}

/// One table cell: text, with the characters at `marked` (char indices) highlighted.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// The text.
    pub text: String,
    /// Indices of characters to highlight (e.g. wrong answer digits).
    pub marked: Vec<usize>,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, marked: Vec::new() }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

/// Figures to choose between: one option shown at a time (a CSS-only selector).
#[derive(Clone, Debug)]
pub struct Picker {
    /// Unique id (letters, digits, `-`).
    pub id: String,
    /// Prompt shown before the options.
    pub prompt: String,
    /// `(option label, figures shown for it)`.
    pub options: Vec<(String, Vec<Figure>)>,
}

/// A piece of a section.
#[derive(Clone, Debug)]
pub enum Block {
    /// A paragraph of plain text.
    Text(String),
    /// A highlighted note (e.g. "run `arithlens analyze`").
    Note(String),
    /// Bullet points of plain text.
    List(Vec<String>),
    /// Preformatted text (e.g. the algorithm per digit).
    Pre(String),
    /// A figure.
    Figure(Figure),
    /// A table.
    Table(Table),
    /// A selector among precomputed figures.
    Picker(Picker),
}

/// One numbered section of the report.
#[derive(Clone, Debug)]
pub struct Section {
    /// Anchor id (`training`, `attention`, ...).
    pub id: String,
    /// Heading.
    pub title: String,
    /// Content in order.
    pub blocks: Vec<Block>,
}

impl Section {
    /// An empty section.
    pub fn new(id: &str, title: &str) -> Section {
        Section { id: id.into(), title: title.into(), blocks: Vec::new() }
    }

    /// Appends a block.
    pub fn push(&mut self, b: Block) -> &mut Section {
        self.blocks.push(b);
        self
    }

    /// Every figure in the section, pickers' figures included.
    pub fn figures(&self) -> Vec<&Figure> {
        self.blocks
            .iter()
            .flat_map(|b| match b {
                Block::Figure(f) => vec![f],
                Block::Picker(p) => p.options.iter().flat_map(|o| o.1.iter()).collect(),
                _ => Vec::new(),
            })
            .collect()
    }
}

/// The report: a title, a subtitle and sections.
#[derive(Clone, Debug)]
pub struct Page {
    /// Page title.
    pub title: String,
    /// One line under the title.
    pub subtitle: String,
    /// Sections in order.
    pub sections: Vec<Section>,
    /// `<meta name content>` pairs for the page's head (e.g. its provenance, for tools).
    pub meta: Vec<(String, String)>,
}
