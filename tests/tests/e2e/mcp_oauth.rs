//! Remote MCP servers that require OAuth 2.1 (docs/mcp.md#oauth), against
//! the test authorization server of `openheim_e2e::oauth_server`:
//! `openheim mcp login` completes the flow (the test follows the printed
//! address like a browser would), stores the tokens privately, and `openheim
//! run` calls the protected server's tool; revoked or expiring access tokens
//! are refreshed by the broker; a foreign `state` is refused by the client
//! and a wrong PKCE verifier by the server. With a Redis `[store]` (a
//! deployment), login, refresh and the rotated tokens live in Redis, and
//! brokers refreshing at once use the refresh token once.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use openheim_e2e::install::{stderr, stdout};
use openheim_e2e::oauth_server::{ADMIN_SCOPE, ADMIN_WORD, OAuthServer, SECRET_WORD};
use openheim_e2e::{
    Install, MockLlm, RedisServer, Reply, ServiceProcess, ToolCallSpec, bin_path, last_tool_result,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const PATIENCE: Duration = Duration::from_secs(60);

/// Two turns, each calling `secure__secret_word` and quoting its result.
fn secret_script(turns: usize) -> Vec<Reply> {
    let mut replies = Vec::new();
    for _ in 0..turns {
        replies.push(Reply::tool_calls(vec![ToolCallSpec::new(
            "secure__secret_word",
            json!({}),
        )]));
        replies.push(Reply::dynamic(|request| {
            let result = last_tool_result(request).unwrap_or_default();
            Reply::text(format!("The server said: {result}"))
        }));
    }
    replies
}

fn section(oauth: &OAuthServer) -> String {
    format!("[mcp_servers.secure]\nurl = \"{}\"\n", oauth.mcp_url())
}

/// `openheim mcp login secure`, started; returns the child and the
/// authorization address it printed.
async fn start_login(install: &Install) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(bin_path("openheim"))
        .args(["mcp", "login", "secure", "--timeout-secs", "60"])
        .current_dir(install.workspace())
        .env("OPENHEIM_HOME", install.home())
        .env("HOME", install.root.path())
        .env_remove("OPENHEIM_CONFIG")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("login printed no address in time")
        .unwrap()
        .expect("login ended without printing an address");
    (child, url)
}

async fn finish(child: tokio::process::Child) -> (bool, String) {
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("login did not end")
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn stored(install: &Install) -> Value {
    let file = install.home().join("mcp-auth/secure.json");
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

async fn secret_turn(install: &Install) -> (String, String) {
    let output = install.openheim(&["run", "What is the secret word?"]).await;
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(output.status.success(), "run failed: {err}");
    (out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_run_calls_the_protected_server_and_refreshes_tokens() {
    let oauth = OAuthServer::start(Duration::from_secs(3600)).await;
    let mock = MockLlm::start(secret_script(2)).await;
    let install = Install::new(&mock, &section(&oauth));

    let (child, url) = start_login(&install).await;
    assert!(
        url.starts_with(&format!("{}/authorize?", oauth.base())),
        "{url}"
    );
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    // The browser: follow the redirect to the loopback address.
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Signed in"));
    let (ok, login_log) = finish(child).await;
    assert!(ok, "login failed: {login_log}");

    let file = install.home().join("mcp-auth/secure.json");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&install.home().join("mcp-auth")), 0o700);
    let tokens = stored(&install);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(
        !login_log.contains(&access) && !login_log.contains(&refresh),
        "{login_log}"
    );

    let (out, log) = secret_turn(&install).await;
    assert!(out.contains(SECRET_WORD), "stdout: {out}\nstderr: {log}");
    assert_eq!(oauth.refreshes(), 0);

    // The server forgets the access token: the broker refreshes on the 401.
    oauth.revoke_access_tokens();
    let (out, log) = secret_turn(&install).await;
    assert!(out.contains(SECRET_WORD), "stdout: {out}\nstderr: {log}");
    assert_eq!(oauth.refreshes(), 1);
    assert!(
        oauth.rejected_tokens() >= 1,
        "the revoked token was never refused"
    );
    let rotated = stored(&install);
    assert_ne!(
        rotated["refresh_token"].as_str().unwrap(),
        refresh,
        "not rotated"
    );
    assert_eq!(mode(&file), 0o600);
    for secret in [&access, &refresh] {
        assert!(!log.contains(secret.as_str()), "a token in the log: {log}");
    }
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_about_to_expire_are_refreshed_before_use() {
    // Access tokens live 20 s, less than the 30 s refresh margin: the
    // broker refreshes before its first request, so the server is never
    // shown a token it refuses.
    let oauth = OAuthServer::start(Duration::from_secs(20)).await;
    let mock = MockLlm::start(secret_script(1)).await;
    let install = Install::new(&mock, &section(&oauth));
    let (child, url) = start_login(&install).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    assert!(finish(child).await.0);
    let (out, log) = secret_turn(&install).await;
    assert!(out.contains(SECRET_WORD), "stdout: {out}\nstderr: {log}");
    assert!(oauth.refreshes() >= 1, "no refresh before expiry");
    assert_eq!(oauth.rejected_tokens(), 0, "the broker waited for a 401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_login_the_server_needs_sign_in_and_the_turn_goes_on() {
    let oauth = OAuthServer::start(Duration::from_secs(3600)).await;
    let mock = MockLlm::start(vec![Reply::text("no tools needed")]).await;
    let install = Install::new(&mock, &section(&oauth));
    let output = install.openheim(&["run", "hello"]).await;
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(output.status.success(), "{err}");
    assert!(out.contains("no tools needed"), "{out}");
    assert!(!mock.tool_names(0).iter().any(|t| t.starts_with("secure__")));
    let warnings = err
        .matches("sign-in needed: run `openheim mcp login secure`")
        .count();
    assert_eq!(warnings, 1, "warned {warnings} times: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_an_answer_with_a_foreign_state() {
    let oauth = OAuthServer::start(Duration::from_secs(3600)).await;
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, &section(&oauth));
    let (child, url) = start_login(&install).await;
    let parsed = url::Url::parse(&url).unwrap();
    let redirect = parsed
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"));
    let forged = reqwest::get(format!("{redirect}?code=stolen&state=forged"))
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let (ok, log) = finish(child).await;
    assert!(!ok);
    assert!(log.contains("state does not match"), "{log}");
    assert!(!install.home().join("mcp-auth/secure.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_server_refuses_a_wrong_pkce_verifier() {
    use base64::Engine;
    use sha2::Digest;
    let oauth = OAuthServer::start(Duration::from_secs(3600)).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:9/callback";
    let registered: Value = http
        .post(format!("{}/register", oauth.base()))
        .json(&json!({ "redirect_uris": [redirect] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registered["client_id"].as_str().unwrap();
    let verifier = "a-verifier-of-the-right-length-0123456789abcdef";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let code = |http: reqwest::Client| {
        let url = format!(
            "{}/authorize?response_type=code&client_id={client_id}&redirect_uri={redirect}&code_challenge={challenge}&code_challenge_method=S256&state=s&resource={}",
            oauth.base(),
            oauth.mcp_url()
        );
        async move {
            let answer = http.get(url).send().await.unwrap();
            assert_eq!(answer.status(), 303, "{:?}", answer.text().await);
            let location = answer.headers()["location"].to_str().unwrap().to_owned();
            let parsed = url::Url::parse(&location).unwrap();
            parsed
                .query_pairs()
                .find(|(k, _)| k == "code")
                .unwrap()
                .1
                .into_owned()
        }
    };
    let exchange = |code: String, verifier: &'static str| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("code_verifier", verifier)
            .append_pair("resource", &oauth.mcp_url())
            .finish();
        http.post(format!("{}/token", oauth.base()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let wrong = exchange(code(http.clone()).await, "not-the-verifier")
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    let error: Value = wrong.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");
    let right = exchange(code(http.clone()).await, verifier).await.unwrap();
    assert_eq!(right.status(), 200);
}

/// Whatever the order of two concurrent runs' requests: without a tool
/// result yet, call `secure__secret_word`; with one, quote it.
fn secret_script_any_order(turns: usize) -> Vec<Reply> {
    (0..turns * 2)
        .map(|_| {
            Reply::dynamic(|request| match last_tool_result(request) {
                Some(result) => Reply::text(format!("The server said: {result}")),
                None => {
                    Reply::tool_calls(vec![ToolCallSpec::new("secure__secret_word", json!({}))])
                }
            })
        })
        .collect()
}

/// The tokens `openheim mcp login` stored in Redis, `None` when none.
async fn stored_in_redis(redis: &RedisServer) -> Option<Value> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let raw: Option<String> = redis::cmd("GET")
        .arg(format!("{}:mcp-auth:secure", redis.prefix()))
        .query_async(&mut connection)
        .await
        .unwrap();
    raw.map(|raw| serde_json::from_str(&raw).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_deployment_tokens_live_in_redis_and_two_brokers_refresh_once() {
    let redis = RedisServer::start();
    let oauth = OAuthServer::start(Duration::from_secs(3600)).await;
    let mock = MockLlm::start(secret_script_any_order(3)).await;
    let store = format!(
        "[store]\nurl = \"{}\"\nprefix = \"{}\"\n",
        redis.url(),
        redis.prefix()
    );
    let install = Install::new(&mock, &format!("{store}\n{}", section(&oauth)));

    let (child, url) = start_login(&install).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let (ok, login_log) = finish(child).await;
    assert!(ok, "login failed: {login_log}");
    assert!(login_log.contains(":mcp-auth:secure"), "{login_log}");
    assert!(!install.home().join("mcp-auth/secure.json").exists());
    let tokens = stored_in_redis(&redis).await.expect("no tokens in Redis");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    let (out, log) = secret_turn(&install).await;
    assert!(out.contains(SECRET_WORD), "stdout: {out}\nstderr: {log}");
    assert_eq!(oauth.refreshes(), 0);

    // The access token stops working; two brokers (two runs) meet the 401
    // at once. The test server honours each refresh token once: a second
    // refresh with the same one would fail that run's sign-in.
    oauth.revoke_access_tokens();
    let (first, second) = tokio::join!(secret_turn(&install), secret_turn(&install));
    for (out, log) in [&first, &second] {
        assert!(out.contains(SECRET_WORD), "stdout: {out}\nstderr: {log}");
        for secret in [&access, &refresh] {
            assert!(!log.contains(secret.as_str()), "a token in the log: {log}");
        }
    }
    assert_eq!(oauth.refreshes(), 1, "the refresh token was used twice");
    let rotated = stored_in_redis(&redis).await.unwrap();
    assert_ne!(
        rotated["refresh_token"].as_str().unwrap(),
        refresh,
        "not rotated"
    );
    assert_ne!(rotated["access_token"].as_str().unwrap(), access);

    // The standalone broker of a deployment, with a home of its own (no
    // token files): it reads the tokens from Redis, refreshes them after a
    // 401 and writes the rotated ones back there.
    standalone_broker_uses_redis(&install, &oauth, &redis, &rotated).await;
    assert_eq!(oauth.refreshes(), 2);

    let output = install.openheim(&["mcp", "logout", "secure"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stored_in_redis(&redis).await.is_none());
    mock.assert_no_violations();
}

async fn standalone_broker_uses_redis(
    install: &Install,
    oauth: &OAuthServer,
    redis: &RedisServer,
    before: &Value,
) {
    use openheim_proto::common::v1::ToolCall;
    use openheim_proto::mcp_broker::v1::mcp_broker_client::McpBrokerClient;
    use openheim_proto::mcp_broker::v1::{CallToolRequest, ListServersRequest, ServerState};

    let home = tempfile::tempdir().unwrap();
    let config = install.home().join("config.toml");
    let env = [
        ("OPENHEIM_CONFIG", config.to_str().unwrap()),
        ("OPENHEIM_HOME", home.path().to_str().unwrap()),
    ];
    let broker = ServiceProcess::spawn("openheim-mcp-broker", &[], &env).await;
    let client = McpBrokerClient::new(openheim_proto::transport::remote(&broker.addr()).unwrap());
    let status = || async {
        let servers = client
            .clone()
            .list_servers(ListServersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .servers;
        servers.into_iter().find(|s| s.name == "secure").unwrap()
    };
    let connected = async {
        while status().await.state != ServerState::Connected as i32 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, connected)
        .await
        .unwrap_or_else(|_| panic!("never connected: {}", broker.stderr_tail()));
    oauth.revoke_access_tokens();
    let call = CallToolRequest {
        session_id: String::new(),
        call: Some(ToolCall {
            id: "call-1".into(),
            name: "secure__secret_word".into(),
            arguments_json: "{}".into(),
        }),
        timeout_ms: 0,
    };
    let answer = client.clone().call_tool(call).await.unwrap().into_inner();
    assert!(
        answer.output.contains(SECRET_WORD),
        "{answer:?}\n{}",
        broker.stderr_tail()
    );
    let secure = status().await;
    assert!(
        secure.auth.starts_with("oauth (signed in, expires "),
        "{secure:?}"
    );
    let after = stored_in_redis(redis).await.unwrap();
    assert_ne!(
        after["refresh_token"], before["refresh_token"],
        "not rotated"
    );
    assert!(!home.path().join("mcp-auth").exists());
    let log = broker.stderr_tail();
    for secret in [
        &before["refresh_token"],
        &after["refresh_token"],
        &after["access_token"],
    ] {
        assert!(
            !log.contains(secret.as_str().unwrap()),
            "a token in the log: {log}"
        );
    }
}

/// Step-up: a tool the sign-in's scope does not cover answers 403
/// `insufficient_scope`; the model is told the scope and the command, the
/// scope is remembered, and the next login asks for it as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_scope_is_named_and_the_next_login_asks_for_it() {
    let oauth = OAuthServer::start(Duration::from_secs(3600)).await;
    let mut script = Vec::new();
    for _ in 0..2 {
        script.push(Reply::tool_calls(vec![ToolCallSpec::new(
            "secure__admin_word",
            json!({}),
        )]));
        script.push(Reply::dynamic(|request| {
            let result = last_tool_result(request).unwrap_or_default();
            Reply::text(format!("The server said: {result}"))
        }));
    }
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, &section(&oauth));
    let (child, url) = start_login(&install).await;
    assert!(!url.contains("mcp%3Aadmin"), "{url}");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    assert!(finish(child).await.0);

    let output = install.openheim(&["run", "What is the admin word?"]).await;
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(output.status.success(), "{err}");
    assert!(!out.contains(ADMIN_WORD), "{out}");
    let told =
        format!("the server needs the scope `{ADMIN_SCOPE}`: run `openheim mcp login secure`");
    assert!(out.contains(&told), "stdout: {out}\nstderr: {err}");
    assert_eq!(stored(&install)["wanted_scope"], ADMIN_SCOPE);

    let (child, url) = start_login(&install).await;
    let asked = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert!(asked.split(' ').any(|s| s == "mcp:admin"), "{url}");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    assert!(finish(child).await.0);
    let output = install.openheim(&["run", "What is the admin word?"]).await;
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(out.contains(ADMIN_WORD), "stdout: {out}\nstderr: {err}");
    assert!(stored(&install).get("wanted_scope").is_none());
}

/// Polls `/api/mcp-servers` until `secure` is in `state`.
async fn rest_status(server: &super::gateway::support::Server, state: &str) -> Value {
    let wait = async {
        loop {
            let (_, body) = server.get("/api/mcp-servers", None).await;
            let found = body["servers"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "secure").cloned());
            if let Some(status) = found.filter(|s| s["state"] == state) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("`secure` never became {state}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_shows_the_sign_in_and_the_server_connects_after_login() {
    let oauth = OAuthServer::start(Duration::from_secs(3600)).await;
    let server = super::gateway::support::Server::start(Vec::new(), &section(&oauth)).await;
    let before = rest_status(&server, "failed").await;
    assert_eq!(
        before["auth"],
        "oauth (login needed: openheim mcp login secure)"
    );
    assert_eq!(
        before["error"],
        "sign-in needed: run `openheim mcp login secure`"
    );

    let (child, url) = start_login(&server.install).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    assert!(finish(child).await.0);
    // The running server picks the tokens up at its next attempt.
    let after = rest_status(&server, "connected").await;
    let auth = after["auth"].as_str().unwrap_or_default();
    assert!(auth.starts_with("oauth (signed in, expires "), "{after}");
    assert_eq!(after["tool_count"], 2);
    let tokens = stored(&server.install);
    let (_, body) = server.get("/api/mcp-servers", None).await;
    let (_, config) = server.get("/api/config", None).await;
    for secret in ["access_token", "refresh_token"] {
        let value = tokens[secret].as_str().unwrap();
        assert!(!body.to_string().contains(value), "{body}");
        assert!(!config.to_string().contains(value), "{config}");
    }
}
