//! `bootstrap wordpress` against Debian's WordPress (nginx + php-fpm) and a
//! real MariaDB; phpass hashes checked by PHP itself.
#![allow(clippy::unwrap_used)]

mod seeding;

use std::path::Path;
use std::process::{Command, Output};

use bootstrap::wordpress::phpass;
use seeding::{bootstrap, seed_mysql, start_wordpress, succeeded};

const PHPASS: &str = "/usr/share/wordpress/wp-includes/class-phpass.php";

fn php(code: &str, args: &[&str]) -> String {
    let out = Command::new("php")
        .arg("-r")
        .arg(format!(
            "require '{PHPASS}'; $h = new PasswordHash(8, true); {code}"
        ))
        .arg("--")
        .args(args)
        .output()
        .unwrap();
    succeeded(out)
}

#[test]
fn phpass_agrees_with_wordpress_php_class() {
    for pw in ["secret", "pä:ss wörd \\ ' \"", "x"] {
        let ours = phpass::hash(pw).unwrap();
        assert_eq!(
            php(
                "echo $h->CheckPassword($argv[1], $argv[2]) ? 'yes' : 'no';",
                &[pw, &ours]
            ),
            "yes",
            "PHP rejects our hash of {pw:?}: {ours}"
        );
        assert_eq!(
            php(
                "echo $h->CheckPassword($argv[1], $argv[2]) ? 'yes' : 'no';",
                &["wrong", &ours]
            ),
            "no"
        );
        let theirs = php("echo $h->HashPassword($argv[1]);", &[pw]);
        assert!(theirs.starts_with("$P$B"), "{theirs}");
        assert!(
            phpass::verify(pw, &theirs),
            "we reject PHP's hash of {pw:?}: {theirs}"
        );
        assert!(!phpass::verify("wrong", &theirs));
    }
    // A fixed salt gives a fixed hash: same as PHP's crypt_private for it.
    let fixed = phpass::hash_with_salt("password", &[1, 2, 3, 4, 5, 6]);
    assert_eq!(
        php(
            "echo $h->CheckPassword('password', $argv[1]) ? 'yes' : 'no';",
            &[&fixed]
        ),
        "yes"
    );
}

struct Site {
    _db: testbed::Mariadb,
    wp: testbed::Wordpress,
    dir: tempfile::TempDir,
    db_port: u16,
}

impl Site {
    fn start() -> Site {
        let db = testbed::Mariadb::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        seed_mysql(&db, dir.path());
        let wp = start_wordpress(&db);
        std::fs::create_dir(dir.path().join("ft-wordpress")).unwrap();
        let db_port = db.port();
        Site {
            _db: db,
            wp,
            dir,
            db_port,
        }
    }

    fn write(&self, admin_pw: &str, users: &str) {
        let d = self.dir.path().join("ft-wordpress");
        std::fs::write(d.join("admin-password"), format!("{admin_pw}\n")).unwrap();
        std::fs::write(d.join("users"), users).unwrap();
    }

    fn run(&self, db_port: u16, timeout: &str) -> Output {
        let url = self.wp.url();
        bootstrap([
            "--timeout",
            timeout,
            "wordpress",
            "--local-url",
            &url,
            "--site-url",
            &url,
            "--secrets",
            self.dir.path().join("ft-wordpress").to_str().unwrap(),
            "--db-host",
            "127.0.0.1",
            "--db-port",
            &db_port.to_string(),
            "--db-password-file",
            self.dir
                .path()
                .join("ft-mysql/wordpress-password")
                .to_str()
                .unwrap(),
        ])
    }

    fn run_ok(&self) {
        let out = self.run(self.db_port, "60s");
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.wp.logs()
        );
    }

    /// SQL as WordPress's MySQL account; the client's tab-separated output.
    fn sql(&self, statements: &str) -> String {
        let out = Command::new("mariadb")
            .args([
                "-h127.0.0.1",
                "-uwordpress",
                "-pwordpress-pw",
                "--batch",
                "wordpress",
            ])
            .arg(format!("-P{}", self.db_port))
            .args(["-e", statements])
            .output()
            .unwrap();
        succeeded(out)
    }

    /// Logs in through /wp-login.php; returns the cookie jar on success.
    fn login(&self, login: &str, pw: &str) -> Option<tempfile::NamedTempFile> {
        let jar = tempfile::NamedTempFile::new().unwrap();
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
                "-c",
            ])
            .arg(jar.path())
            .args(["-b", "wordpress_test_cookie=WP%20Cookie%20check"])
            .args(["--data-urlencode", &format!("log={login}")])
            .args(["--data-urlencode", &format!("pwd={pw}")])
            .args(["-d", "testcookie=1"])
            .arg(format!("{}/wp-login.php", self.wp.url()))
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&out.stdout).into_owned();
        if answer.starts_with("302 ") && answer.contains("/wp-admin/") {
            Some(jar)
        } else {
            assert!(answer.starts_with("200"), "login of {login}: {answer}");
            None
        }
    }

    /// GET as the jar's user: (status, body).
    fn get(&self, jar: &Path, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-b"])
            .arg(jar)
            .arg(format!("{}{path}", self.wp.url()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_string())
    }
}

/// The role WordPress shows for `login` in the admin's user list.
fn role_in_user_list(html: &str, login: &str) -> Option<String> {
    html.split("<tr id=\"user-")
        .skip(1)
        .chain(html.split("<tr id='user-").skip(1))
        .find_map(|row| {
            let row = row.split("</tr>").next()?;
            if !row.contains(&format!(">{login}</a>")) {
                return None;
            }
            let role = row.split("column-role").nth(1)?;
            let role = role.split('>').nth(1)?.split('<').next()?;
            Some(role.trim().to_string())
        })
}

/// What each role may open: posts list, pages list, the user list.
fn check_role(site: &Site, login: &str, pw: &str, role: &str, admin_jar: &Path) {
    let jar = site
        .login(login, pw)
        .unwrap_or_else(|| panic!("{login} could not log in"));
    let (code, body) = site.get(jar.path(), "/wp-admin/profile.php");
    assert_eq!(code, 200, "{login}: profile.php");
    assert!(
        body.contains(login),
        "{login}: profile.php does not show the login"
    );
    let expect = match role {
        "Editor" => (200, 200),
        "Author" | "Contributor" => (200, 403),
        "Subscriber" => (403, 403),
        _ => unreachable!(),
    };
    let posts = site.get(jar.path(), "/wp-admin/edit.php").0;
    let pages = site.get(jar.path(), "/wp-admin/edit.php?post_type=page").0;
    assert_eq!((posts, pages), expect, "{login} as {role}: posts/pages");
    let upload = site.get(jar.path(), "/wp-admin/media-new.php").0;
    assert_eq!(
        upload == 200,
        role == "Editor" || role == "Author",
        "{login} as {role}: upload"
    );
    let (_, list) = site.get(admin_jar, "/wp-admin/users.php");
    assert_eq!(
        role_in_user_list(&list, login).as_deref(),
        Some(role),
        "{login}"
    );
}

const USERS: &str = "# role-per-user\n\
    ed:editor:ed@example.com:ed pass:1\n\
    \n\
    au:author:au@example.com:au-pass\n\
    co:contributor:co@example.com:co-pass\n\
    sub:subscriber:sub@example.com:sub-pass\n";

#[test]
fn installs_site_and_users_idempotently_and_fixes_drift() {
    let site = Site::start();
    site.write("admin-pass", USERS);
    site.run_ok();
    let state = site.sql(
        "SELECT user_login, user_pass, user_email FROM wp_users ORDER BY ID; \
         SELECT user_id, meta_key, meta_value FROM wp_usermeta ORDER BY umeta_id; \
         SELECT option_value FROM wp_options WHERE option_name IN ('siteurl', 'home')",
    );
    site.run_ok();
    assert_eq!(
        site.sql(
            "SELECT user_login, user_pass, user_email FROM wp_users ORDER BY ID; \
         SELECT user_id, meta_key, meta_value FROM wp_usermeta ORDER BY umeta_id; \
         SELECT option_value FROM wp_options WHERE option_name IN ('siteurl', 'home')"
        ),
        state,
        "a second run changed what was already right"
    );
    assert!(state.contains("$P$B"), "{state}");

    let admin = site.login("admin", "admin-pass").expect("admin logs in");
    let (code, body) = site.get(admin.path(), "/wp-admin/options-general.php");
    assert_eq!(code, 200);
    assert!(body.contains(&site.wp.url()), "site URL not set");
    assert!(body.contains("value=\"ft_services\""), "title not set");
    for (login, pw, role) in [
        ("ed", "ed pass:1", "Editor"),
        ("au", "au-pass", "Author"),
        ("co", "co-pass", "Contributor"),
        ("sub", "sub-pass", "Subscriber"),
    ] {
        check_role(&site, login, pw, role, admin.path());
        assert!(
            site.login(login, "wrong").is_none(),
            "{login}: wrong password accepted"
        );
    }
    assert!(site.login("admin", "wrong").is_none());

    // Drift: a changed password and a changed role in the files are applied;
    // a role changed by hand in the database is put back.
    site.write(
        "admin-pass-2",
        &USERS
            .replace("au-pass", "au-pass-2")
            .replace("sub:subscriber:", "sub:editor:"),
    );
    site.sql("UPDATE wp_usermeta SET meta_value = 'a:1:{s:13:\"administrator\";b:1;}' WHERE meta_key = 'wp_capabilities' AND user_id = (SELECT ID FROM wp_users WHERE user_login = 'co')");
    site.run_ok();
    assert!(site.login("au", "au-pass").is_none());
    assert!(site.login("admin", "admin-pass").is_none());
    let admin = site
        .login("admin", "admin-pass-2")
        .expect("admin, new password");

    // WordPress >= 6.8 rehashes to bcrypt at login: an unchanged Secret must
    // leave that hash alone, a changed one replaces it.
    let rehashed = "$wp$2y$10$abcdefghijklmnopqrstuu5Zf7Ce2t2G5N1aYdkN2cUzYQ3VcQ2O";
    site.sql(&format!(
        "UPDATE wp_users SET user_pass = '{rehashed}' WHERE user_login IN ('ed', 'co')"
    ));
    site.write(
        "admin-pass-2",
        &USERS
            .replace("au-pass", "au-pass-2")
            .replace("sub:subscriber:", "sub:editor:")
            .replace("co-pass", "co-pass-2"),
    );
    site.run_ok();
    let pass = |login: &str| {
        site.sql(&format!(
            "SELECT user_pass FROM wp_users WHERE user_login = '{login}'"
        ))
        .lines()
        .nth(1)
        .unwrap()
        .to_string()
    };
    assert_eq!(pass("ed"), rehashed, "an unchanged password was rewritten");
    assert!(
        pass("co").starts_with("$P$B"),
        "a changed password was not applied"
    );
    check_role(&site, "au", "au-pass-2", "Author", admin.path());
    check_role(&site, "sub", "sub-pass", "Editor", admin.path());
    check_role(&site, "co", "co-pass-2", "Contributor", admin.path());
}

#[test]
fn bad_input_is_named_and_unreachable_database_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path();
    std::fs::write(secrets.join("admin-password"), "pw\n").unwrap();
    std::fs::write(
        secrets.join("users"),
        "# ok\ned:editor:ed@example.com:pw\nbroken\n",
    )
    .unwrap();
    std::fs::write(secrets.join("db-password"), "pw\n").unwrap();
    let port = testbed::free_port().unwrap().to_string();
    let args = |timeout: &'static str| {
        vec![
            "--timeout".to_string(),
            timeout.into(),
            "wordpress".into(),
            "--site-url".into(),
            "https://192.0.2.1:5050".into(),
            "--local-url".into(),
            format!("http://127.0.0.1:{port}"),
            "--secrets".into(),
            secrets.to_str().unwrap().into(),
            "--db-host".into(),
            "127.0.0.1".into(),
            "--db-port".into(),
            port.clone(),
            "--db-password-file".into(),
            secrets.join("db-password").to_str().unwrap().into(),
        ]
    };
    let run = |timeout| {
        let a = args(timeout);
        bootstrap(&a)
    };
    let out = run("2s");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}/users: line 3", secrets.display())),
        "{err}"
    );

    std::fs::write(secrets.join("users"), "ed:editor:ed@example.com:pw\n").unwrap();
    std::fs::write(secrets.join("admin-password"), "").unwrap();
    let out = run("2s");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("admin-password is empty"),
        "{err}"
    );

    std::fs::write(secrets.join("admin-password"), "pw\n").unwrap();
    let out = run("2s");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("MySQL at 127.0.0.1:{port} not reachable within")),
        "{err}"
    );
}
