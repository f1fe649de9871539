//! Loader tests: files, folders, multi-document, List, errors with file:line:column.
