//! Fuzz target: any runtime config text is loaded or refused with a one-line, located error, and
//! nothing panics. Random inputs under `cargo test`; coverage-guided with `cargo bolero test`
//! (bench/fuzz.sh).

use super::*;

const FRAGMENTS: &[&str] = &[
    "[key_value_store.default]\n", "[key_value_store.\"a b\"]\n", "[sqlite_database.default]\n",
    "type = \"kiln\"\n", "type = \"spin\"\n", "type = \"redis\"\n", "type = \"libsql\"\n", "type = \"vault\"\n",
    "path = \"data/kv.db\"\n", "path = \"/abs\"\n", "path = \"\"\n", "url = \"redis://127.0.0.1:6379\"\n", "url = \"nope\"\n",
    "[[variables_provider]]\n", "type = \"env\"\n", "prefix = \"APP\"\n", "type = \"static\"\n",
    "values = { a = \"b\", c = 1 }\n", "type = \"dotenv\"\n", "[messaging]\ntype = \"nats\"\n", "max_deliver = 0\n",
    "[key_value_store]\n", "[sqlite_database]\ndefault = 1\n", "\"\n", "=", "[", "]", "{", "}", "\n", " ", "#", "1e400",
];

#[test]
fn runtime_config() {
    bolero::check!().for_each(|input: &[u8]| {
        let text = kiln_fuzz_input::assemble(input, FRAGMENTS);
        if let Err(err) = RuntimeConfig::parse(text.clone(), Path::new("/app/runtime-config.toml")) {
            let shown = err.to_string();
            assert!(!shown.is_empty() && !shown.contains('\n'), "not one line: {shown:?}");
            if let Some((line, column)) = err.line_col() {
                assert!(line >= 1 && line <= text.split('\n').count() && column >= 1, "{shown}");
            }
        }
    });
}
