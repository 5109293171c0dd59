//! The report: figures as standalone SVG, and the HTML page that shows a run.

pub mod svg;
