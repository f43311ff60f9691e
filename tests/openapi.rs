//! docs/openapi.yaml describes every API route the server has, and no route it lacks.

#[test]
fn openapi_lists_exactly_the_api_routes() {
    let root = env!("CARGO_MANIFEST_DIR");
    let code: String = std::fs::read_dir(format!("{root}/src/web"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let spec = std::fs::read_to_string(format!("{root}/docs/openapi.yaml")).unwrap();
    // `.route("/path", ...)`, also when rustfmt put the path on a line of its own.
    let in_code: std::collections::BTreeSet<String> = code
        .split(".route(")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"'))
        .map(|r| r.split('"').next().unwrap().to_string())
        .filter(|r| r.starts_with("/api/"))
        .collect();
    let in_spec: std::collections::BTreeSet<String> = spec
        .lines()
        .filter(|l| l.starts_with("  /api/"))
        .map(|l| l.trim().trim_end_matches(':').to_string())
        .collect();
    assert!(!in_code.is_empty());
    assert_eq!(in_code, in_spec);
}
