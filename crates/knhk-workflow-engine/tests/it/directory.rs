//! Loading the directory of roles: typed errors that say which file and what is wrong.

use knhk_workflow_engine::{Directory, DirectoryError};

#[test]
fn from_json_reads_roles_and_refuses_other_shapes() {
    let d = Directory::from_json(r#"{"roles": {"clerk": ["ann", "bob"]}}"#).unwrap();
    assert_eq!(d.users("clerk"), ["ann", "bob"]);

    let err = Directory::from_json(r#"{"roles": {}, "users": []}"#).unwrap_err();
    let DirectoryError::Parse { path, source } = &err else {
        panic!("expected a parse error, got {err:?}");
    };
    assert_eq!(path, &None);
    assert_eq!(source.line(), 1);
    assert!(
        err.to_string()
            .starts_with("directory: unknown field `users`"),
        "{err}"
    );
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("directory.json");
    assert!(Directory::load(&missing).unwrap().users("clerk").is_empty());

    std::fs::write(&missing, "{\n  \"roles\": [1]\n}").unwrap();
    let err = Directory::load(&missing).unwrap_err();
    match &err {
        DirectoryError::Parse { path, source } => {
            assert_eq!(path.as_deref(), Some(missing.as_path()));
            assert_eq!(source.line(), 2);
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("{}: invalid type", missing.display())),
        "{err}"
    );

    // A directory where the file should be cannot be read.
    let err = Directory::load(dir.path()).unwrap_err();
    assert!(matches!(err, DirectoryError::Read { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read: ", dir.path().display())),
        "{err}"
    );
}
