//! `hermes init` and `hermes check-config` as a new business meets them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn hermes_in(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermes"))
        .args(args)
        .current_dir(dir)
        .env_remove("HERMES_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hermes");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("hermes output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_non_interactive_writes_a_config_that_passes_check_config() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = hermes_in(
        tmp.path(),
        &[
            "init",
            "--non-interactive",
            "--business-name",
            "Corner \"Bakery\"",
            "--phone",
            "+15555550142",
            "--timezone",
            "Europe/London",
            "bakery",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for file in
        ["bakery/hermes.toml", "bakery/data/calendars/owner.json", "bakery/data/orders.json"]
    {
        assert!(tmp.path().join(file).is_file(), "{file} written");
    }
    let check = hermes_in(tmp.path(), &["check-config", "bakery/hermes.toml"], "");
    assert!(check.status.success(), "{}{}", text(&check.stdout), text(&check.stderr));
    let summary = text(&check.stdout);
    assert!(summary.contains("Corner \"Bakery\" (Europe/London)"), "{summary}");
}

#[test]
fn init_asks_again_when_an_answer_is_invalid() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Name, a bad phone then a good one, no transfer number, a bad zone then a good one, agent.
    let answers = "Corner Bakery\n555-0142\n+15555550142\n\nMars/Olympus\nEurope/Paris\nAva\n";
    let out = hermes_in(tmp.path(), &["init", "shop"], answers);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let prompts = text(&out.stderr);
    assert!(prompts.contains("\"555-0142\" is not an E.164 number"), "{prompts}");
    assert!(prompts.contains("\"Mars/Olympus\" is not an IANA time zone"), "{prompts}");
    let written = std::fs::read_to_string(tmp.path().join("shop/hermes.toml")).expect("written");
    assert!(written.contains("timezone = \"Europe/Paris\""));
    assert!(written.contains("agent_name = \"Ava\""));
}

#[test]
fn init_without_answers_or_flags_says_how_to_script_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = hermes_in(tmp.path(), &["init"], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--non-interactive"), "{}", text(&out.stderr));
    assert!(!tmp.path().join("hermes.toml").exists(), "nothing written");
}

#[test]
fn init_never_overwrites_without_force() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("hermes.toml"), "# mine\n").expect("write");
    let out = hermes_in(tmp.path(), &["init", "--non-interactive"], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(tmp.path().join("hermes.toml")).expect("read"), "# mine\n");
    let forced = hermes_in(tmp.path(), &["init", "--non-interactive", "--force"], "");
    assert!(forced.status.success(), "{}", text(&forced.stderr));
}

#[test]
fn init_with_an_invalid_flag_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = hermes_in(tmp.path(), &["init", "--non-interactive", "--timezone", "Nowhere"], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("business.timezone: \"Nowhere\" is not an IANA time zone"));
    assert!(!tmp.path().join("hermes.toml").exists());
}

#[test]
fn check_config_lists_every_problem_with_its_line_and_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = "[business]\nname = \"Shop\"\ntimezone = \"UTC\"\n\n\
                [[business.staff]]\nid = \"ana\"\nname = \"Ana\"\ncalendar = \"calendars/ana.json\"\n\n\
                [business.hours]\nsaturday = \"9-17\"\n\n[server]\nlisten = \"localhost\"\n";
    std::fs::write(tmp.path().join("hermes.toml"), file).expect("write");
    let out = hermes_in(tmp.path(), &["check-config"], "");
    assert!(!out.status.success());
    let report = text(&out.stdout);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(lines[0].starts_with("business.staff[0].calendar: cannot read "), "{report}");
    assert!(lines[0].ends_with("(line 8)"), "{report}");
    assert!(
        lines[1].starts_with("business.hours.saturday: \"9-17\" is not a time range"),
        "{report}"
    );
    assert!(lines[1].ends_with("(line 11)"), "{report}");
    assert_eq!(
        lines[2],
        "server.listen: \"localhost\" is not an address and port like \"0.0.0.0:8080\" (line 14)"
    );
    assert!(text(&out.stderr).contains("3 problems in hermes.toml"), "{}", text(&out.stderr));
}

#[test]
fn check_config_without_a_file_points_to_init() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = hermes_in(tmp.path(), &["check-config"], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("hermes init"), "{}", text(&out.stderr));
}

#[test]
fn the_demo_business_passes_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = hermes_in(root, &["check-config", "examples/hair-salon/hermes.toml"], "");
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("Maple Street Hair"));
}
