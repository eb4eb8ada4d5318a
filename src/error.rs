//! One error type for the whole crate: every variant carries a message that names the
//! problem (file, field, shape, limit) so binaries can print it as one line.
use std::fmt;

#[derive(Clone, PartialEq)]
pub enum Error {
    /// No usable GPU adapter; the message says what to install.
    NoAdapter(String),
    /// Shapes that do not fit an op.
    Shape(String),
    /// A size above what this adapter (or WebGPU's defaults) allows.
    Limit(String),
    /// The GPU reported an error (shader compile, validation, lost device).
    Gpu(String),
    /// Reading or writing a file.
    Io(String),
    /// Bad configuration or command-line value.
    Config(String),
    /// Bad dataset content.
    Data(String),
    /// Training diverged.
    Diverged(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoAdapter(m) => write!(f, "no GPU adapter: {m}"),
            Error::Shape(m) => write!(f, "shape error: {m}"),
            Error::Limit(m) => write!(f, "limit exceeded: {m}"),
            Error::Gpu(m) => write!(f, "GPU error: {m}"),
            Error::Io(m) => write!(f, "I/O error: {m}"),
            Error::Config(m) => write!(f, "config error: {m}"),
            Error::Data(m) => write!(f, "data error: {m}"),
            Error::Diverged(m) => write!(f, "training diverged: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// The message, as for Display: `fn main() -> mmebm::Result<()>` then ends with one readable line.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for shape errors in op constructors.
#[macro_export]
macro_rules! shape_err {
    ($($t:tt)*) => { Err($crate::error::Error::Shape(format!($($t)*))) };
}
