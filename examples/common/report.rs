//! An error and its causes on one line, `: `-separated: `ptth::Error`,
//! like hyper's, names only its own level in `Display` and leaves the
//! cause ("connection refused") to `source()`.

use std::error::Error;
use std::fmt;

/// Displays `self.0` and each of its sources.
pub struct Report<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}
