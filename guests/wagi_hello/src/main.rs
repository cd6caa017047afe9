//! A CGI program (WAGI): what it answers depends on `PATH_INFO`.
//! - `/teapot` → `Status: 418`; `/redirect` → `Location: /elsewhere` (a 302); `/silent` → prints
//!   nothing; `/fail` → exits with 1;
//! - anything else → 200 `text/plain` with its arguments, a few CGI variables and the body it read
//!   on stdin, one `name=value` per line.

use std::io::Read;

fn main() {
    let path_info = std::env::var("PATH_INFO").unwrap_or_default();
    match path_info.as_str() {
        "/teapot" => print!("Status: 418 I'm a teapot\nContent-Type: text/plain\n\nshort and stout"),
        "/redirect" => print!("Location: /elsewhere\n\n"),
        "/silent" => {}
        "/fail" => std::process::exit(1),
        _ => echo(),
    }
}

fn echo() {
    let mut body = String::new();
    let _ = std::io::stdin().read_to_string(&mut body);
    print!("Content-Type: text/plain\r\nX-Wagi: yes\r\n\r\n");
    println!("args={}", std::env::args().collect::<Vec<_>>().join(" "));
    for name in ["REQUEST_METHOD", "QUERY_STRING", "SCRIPT_NAME", "PATH_INFO", "X_MATCHED_ROUTE", "X_FULL_URL", "HTTP_X_CUSTOM", "SERVER_NAME", "CONTENT_LENGTH", "GREETING"] {
        println!("{name}={}", std::env::var(name).unwrap_or_default());
    }
    println!("body={body}");
}
