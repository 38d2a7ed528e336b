//! Owns decK's offline file tools (`gantry file merge|patch|add-tags|remove-tags|list-tags|
//! lint|openapi2kong`): each works on the decK file as a plain JSON/YAML document, so fields
//! Gantry does not model pass through untouched.

pub mod document;
pub mod jsonpath;
pub mod lint;
pub mod merge;
pub mod openapi;
pub mod patch;
pub mod tags;
