//! Servers a test starts for itself, on ports of their own: moto's (AWS Secrets Manager and
//! S3) and Redis. A test that stops or restarts a server must own it; the machine's shared
//! Redis is never touched.

use std::io::Write as _;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// moto's server (PyPI `moto[server]`), which speaks AWS Secrets Manager and S3; killed when
/// dropped.
pub(crate) struct Moto {
    child: Child,
    pub(crate) endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub(crate) fn start() -> Self {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "moto_server cannot start ({e}): `pip install \"moto[server]\"` (.ci/run does)"
                )
            });
        wait_for_port(port, "moto_server");
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn boto3(&self, script: &str, args: &[&str], stdin: &[u8]) {
        let prelude = "import boto3, sys\n\
             def client(service):\n    \
                 return boto3.client(service, endpoint_url=sys.argv[1], region_name='eu-west-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n";
        let mut child = Command::new("python3")
            .args(["-c", &format!("{prelude}{script}"), &self.endpoint])
            .args(args)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        assert!(child.wait().unwrap().success(), "boto3: {script}");
    }

    /// Creates secret `id` holding `value`, with boto3 (which moto depends on).
    pub(crate) fn create_secret(&self, id: &str, value: &str) {
        self.boto3(
            "client('secretsmanager').create_secret(Name=sys.argv[2], SecretString=sys.stdin.read())\n",
            &[id],
            value.as_bytes(),
        );
    }

    /// Creates bucket `name`.
    pub(crate) fn create_bucket(&self, name: &str) {
        self.boto3(
            "client('s3').create_bucket(Bucket=sys.argv[2], \
             CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})\n",
            &[name],
            b"",
        );
    }

    /// The names of the objects in `bucket`.
    pub(crate) fn objects(&self, bucket: &str) -> Vec<String> {
        let script = "import boto3, sys\n\
             c = boto3.client('s3', endpoint_url=sys.argv[1], region_name='eu-west-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n\
             for page in c.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2]):\n    \
                 for o in page.get('Contents', []):\n        print(o['Key'])\n";
        let out = Command::new("python3")
            .args(["-c", script, &self.endpoint, bucket])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The variables that point `omniforge serve` at `bucket` here.
    pub(crate) fn blob_envs<'a>(&'a self, bucket: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("OMNIFORGE_BLOBS_BACKEND", "s3"),
            ("OMNIFORGE_BLOBS_BUCKET", bucket),
            ("OMNIFORGE_BLOBS_ENDPOINT", self.endpoint.as_str()),
            ("OMNIFORGE_BLOBS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
    }
}

/// A `redis-server` of the test's own, keeping nothing on disk; stopped when dropped.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    pub(crate) url: String,
}

impl RedisServer {
    pub(crate) fn start() -> Self {
        let port = free_port();
        let mut server = Self {
            child: None,
            port,
            url: format!("redis://127.0.0.1:{port}"),
        };
        server.resume();
        server
    }

    /// Stops the server (SIGKILL: connections are cut as in a crash).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub(crate) fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server cannot start ({e}): apt-get install redis-server")
            });
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    /// Runs a command with redis-cli; its output.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "redis-cli {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
