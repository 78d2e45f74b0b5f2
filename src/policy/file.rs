//! Reading policy documents from YAML files.
//!
//! A file may hold several documents separated by `---`; each is a Kubernetes-style object
//! of any kind the importers read. Errors name the file and the document's position.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::PolicyError;

/// Parse every document in one file's text into JSON values (the form the API server gives
/// the watcher, so both sources share the importers). Empty documents are skipped.
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<Value>, PolicyError> {
    let mut out = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let parse_error = |message: String| PolicyError::Parse { path: path.to_path_buf(), index: index + 1, message };
        let yaml = serde_yaml::Value::deserialize(de).map_err(|e| parse_error(e.to_string()))?;
        if yaml.is_null() {
            continue;
        }
        let json =
            serde_json::to_value(&yaml).map_err(|e| parse_error(format!("not a JSON-compatible document: {e}")))?;
        if !json.is_object() {
            return Err(parse_error("a policy document must be a mapping".into()));
        }
        out.push(json);
    }
    Ok(out)
}

/// The namespace a file gives its namespaced objects that name none, from a
/// `# signet.dev/namespace: NAME` line among the comments before its first content (what
/// `kubectl apply -n NAME` says for a file applied to a cluster).
pub fn namespace_directive(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with('#') || *l == "---")
        .find_map(|l| l.trim_start_matches('#').trim().strip_prefix("signet.dev/namespace:"))
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_files_skip_empty_documents() {
        let docs = parse_documents(Path::new("f.yaml"), "a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn a_leading_comment_names_the_namespace() {
        let text = "# Tenant policy\n# signet.dev/namespace: payments\n---\nkind: ImagePolicy\n";
        assert_eq!(namespace_directive(text).as_deref(), Some("payments"));
        assert_eq!(namespace_directive("kind: X\n# signet.dev/namespace: late\n"), None, "only before content");
        assert_eq!(namespace_directive("# signet.dev/namespace:\n"), None);
    }

    #[test]
    fn errors_name_file_and_document() {
        let err = parse_documents(Path::new("f.yaml"), "a: 1\n---\nb: [\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("f.yaml") && text.contains("document 2"), "{text}");
        let err = parse_documents(Path::new("f.yaml"), "- 1\n").unwrap_err();
        assert!(err.to_string().contains("mapping"));
    }
}
