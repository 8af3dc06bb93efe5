use nfslock::exit;

/// Every code in the table appears in the README's exit-code table with
/// the same number, so scripts written from the docs stay right.
#[test]
fn readme_lists_every_exit_code() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (code, _) in exit::TABLE {
        let row = format!("| {code} |");
        assert!(readme.contains(&row), "README lacks a row for exit {code}");
    }
    assert!(readme.contains("| 128+n |"));
}

/// The README's shell recipes, as written: `<!-- recipe: NAME -->` then a
/// ```sh block.
fn recipes() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = Vec::new();
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("<!-- recipe: ") {
        rest = &rest[at + "<!-- recipe: ".len()..];
        let name = rest[..rest.find(" -->").unwrap()].to_string();
        let start = rest.find("```sh\n").unwrap() + "```sh\n".len();
        let end = start + rest[start..].find("```").unwrap();
        out.push((name, rest[start..end].to_string()));
        rest = &rest[end..];
    }
    out
}

/// The commands the recipes protect: stubs that note that they ran.
const STUBS: [&str; 6] = [
    "report.sh",
    "migrate.sh",
    "step1",
    "step2",
    "step3",
    "pg_dump",
];

/// One recipe run: its exit status and which protected commands ran.
struct Ran {
    code: i32,
    ran: String,
    stderr: String,
}

fn run_recipe(root: &std::path::Path, body: &str) -> Ran {
    use std::os::unix::fs::PermissionsExt;
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for stub in STUBS {
        let p = bin.join(stub);
        std::fs::write(&p, format!("#!/bin/sh\necho {stub} >> \"$RAN\"\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ran = root.join("ran");
    let _ = std::fs::remove_file(&ran);
    // A crontab line: the command after its five time fields.
    let script: String = body
        .lines()
        .map(|l| match l.starts_with("*/") {
            true => l.splitn(6, ' ').nth(5).unwrap().to_string(),
            false => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("/shared/locks", &root.join("locks").display().to_string())
        .replace("/backup", &root.join("backup").display().to_string());
    let nfslock_dir = std::path::Path::new(crate::util::BIN).parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        nfslock_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("PATH", path)
        .env("RAN", &ran)
        .current_dir(root)
        .output()
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        ran: std::fs::read_to_string(&ran).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every shell recipe in the README works as written, and runs nothing
/// it protects when the lock cannot be taken: its directory missing, or
/// (for the recipes that do not wait) the lock busy.
#[test]
fn every_readme_recipe_works_and_fails_safely() {
    let all = recipes();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["first", "cron", "wrap", "keepalive"],
        "recipes changed"
    );
    for (name, body) in &all {
        let root = tempfile::tempdir().unwrap();
        let locks = root.path().join("locks");
        std::fs::create_dir_all(&locks).unwrap();
        std::fs::create_dir_all(root.path().join("backup")).unwrap();
        let wants: Vec<&str> = STUBS.iter().copied().filter(|s| body.contains(s)).collect();
        let ok = run_recipe(root.path(), body);
        assert_eq!(ok.code, 0, "{name}: {}", ok.stderr);
        for stub in &wants {
            assert!(ok.ran.contains(stub), "{name}: {stub} did not run");
        }
        // Released and clean once the recipe is over (the keeper may take
        // a moment to notice and leave).
        crate::util::eventually(&format!("{name}: locks released"), || {
            std::fs::read_dir(&locks).unwrap().next().is_none()
        });
        // The lock's directory is missing: nothing protected runs.
        std::fs::remove_dir(&locks).unwrap();
        let failed = run_recipe(root.path(), body);
        assert_ne!(failed.code, 0, "{name}: failure went unnoticed");
        assert_eq!(failed.ran, "", "{name}: ran without the lock");
        std::fs::create_dir_all(&locks).unwrap();
        if body.contains(" -n ") {
            let holder = crate::util::sleeper();
            for lock in ["report.lock", "db.lock"] {
                let st = std::process::Command::new(crate::util::BIN)
                    .args(["acquire", "--pid", &holder.pid])
                    .arg(locks.join(lock))
                    .status()
                    .unwrap();
                assert!(st.success());
            }
            let busy = run_recipe(root.path(), body);
            assert_eq!(busy.ran, "", "{name}: ran while the lock was busy");
            let want = if body.contains("-E 0") { 0 } else { 75 };
            assert_eq!(busy.code, want, "{name}: {}", busy.stderr);
        }
    }
}

/// The README stays a short page for users, and every relative link in it
/// and in docs/ names a file that exists.
#[test]
fn readme_is_short_and_links_resolve() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines <= 300, "README has {lines} lines");
    let mut pages = vec![(root.to_path_buf(), readme)];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        pages.push((root.join("docs"), std::fs::read_to_string(path).unwrap()));
    }
    for (base, text) in &pages {
        for link in text.split("](").skip(1) {
            let target = &link[..link.find(')').unwrap()];
            if target.contains("://") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            if !file.is_empty() {
                assert!(
                    base.join(file).exists(),
                    "broken link {target} in {}",
                    base.display()
                );
            }
        }
    }
}
