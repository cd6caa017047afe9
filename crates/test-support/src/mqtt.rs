//! A real `mosquitto` broker, and a `mosquitto_sub` subscriber to see what a guest published.

use crate::process::{Binary, Process, free_port};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

static MOSQUITTO: Binary = Binary {
    name: "mosquitto",
    env: "KILN_TEST_MOSQUITTO",
    package: "mosquitto",
};

static MOSQUITTO_PASSWD: Binary = Binary {
    name: "mosquitto_passwd",
    env: "KILN_TEST_MOSQUITTO_PASSWD",
    package: "mosquitto",
};

static MOSQUITTO_SUB: Binary = Binary {
    name: "mosquitto_sub",
    env: "KILN_TEST_MOSQUITTO_SUB",
    package: "mosquitto-clients",
};

/// A throwaway `mosquitto` on a free loopback port, persisting nothing. Killed when dropped.
pub struct MosquittoServer {
    // Dropped first: the broker goes before its directory.
    process: Process,
    dir: tempfile::TempDir,
}

impl MosquittoServer {
    /// A broker that takes anonymous clients.
    pub fn start() -> MosquittoServer {
        MosquittoServer::launch(None)
    }

    /// A broker that takes only `username` with `password`.
    pub fn start_with_user(username: &str, password: &str) -> MosquittoServer {
        MosquittoServer::launch(Some((username, password)))
    }

    fn launch(user: Option<(&str, &str)>) -> MosquittoServer {
        let dir = tempfile::tempdir().expect("temp dir for mosquitto");
        let auth = match user {
            None => "allow_anonymous true\n".to_string(),
            Some((username, password)) => {
                let file = dir.path().join("passwords");
                let status = Command::new(MOSQUITTO_PASSWD.find())
                    .arg("-b")
                    .arg("-c")
                    .arg(&file)
                    .args([username, password])
                    .status()
                    .expect("run mosquitto_passwd");
                assert!(status.success(), "mosquitto_passwd failed");
                format!("allow_anonymous false\npassword_file {}\n", file.display())
            }
        };
        let mut server = MosquittoServer {
            process: Process::new(&MOSQUITTO, free_port()),
            dir,
        };
        let config: PathBuf = server.dir.path().join("mosquitto.conf");
        let args = |port: u16| {
            // `user root` keeps the broker from switching to a `mosquitto` user that cannot read
            // the temp dir when the tests run as root.
            let text = format!(
                "listener {port} 127.0.0.1\npersistence false\nuser root\n{auth}log_dest stderr\n"
            );
            std::fs::write(&config, text).expect("write mosquitto.conf");
            vec![OsString::from("-c"), config.clone().into_os_string()]
        };
        let ready = |addr| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
        server.process.start(true, args, ready);
        server
    }

    /// `mqtt://127.0.0.1:P`, without the client id the interface wants as `?client_id=…`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port())
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// What the broker printed so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Kills the broker and waits until its port refuses connections.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Subscribes to `topic` at QoS 2 (so each message arrives at the QoS it was published with);
    /// returns once the broker confirmed the subscription.
    pub fn subscribe(&self, topic: &str) -> MqttSubscriber {
        MqttSubscriber::start(self.addr(), topic, None)
    }

    /// [`MosquittoServer::subscribe`] with credentials.
    pub fn subscribe_as(&self, topic: &str, username: &str, password: &str) -> MqttSubscriber {
        MqttSubscriber::start(self.addr(), topic, Some((username, password)))
    }
}

/// A message a subscriber received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttMessage {
    pub topic: String,
    /// The QoS it was delivered at.
    pub qos: u8,
    pub payload: String,
}

/// A running `mosquitto_sub -d`. Killed when dropped.
pub struct MqttSubscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl MqttSubscriber {
    fn start(addr: SocketAddr, topic: &str, user: Option<(&str, &str)>) -> MqttSubscriber {
        // Line-buffered: its debug lines (the SUBACK that says it is subscribed, each message's QoS)
        // otherwise sit in stdio's buffer when stdout is a pipe.
        let mut command = Command::new("stdbuf");
        command
            .arg("-oL")
            .arg(MOSQUITTO_SUB.find())
            .args(["-d", "-v", "-q", "2", "-h", "127.0.0.1", "-t", topic])
            .args(["-p", &addr.port().to_string()]);
        if let Some((username, password)) = user {
            command.args(["-u", username, "-P", password]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub");
        let stdout = child.stdout.take().expect("mosquitto_sub stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut subscriber = MqttSubscriber { child, lines };
        subscriber.wait_line(|line| line.contains("SUBACK"), Duration::from_secs(10));
        subscriber
    }

    fn wait_line(&mut self, wanted: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => continue,
                Err(e) => panic!("mosquitto_sub: no expected line within {timeout:?}: {e}"),
            }
        }
    }

    /// The next message, within `timeout`. `-d -v` prints a `received PUBLISH (d0, qN, …, 'topic',
    /// … (n bytes))` line, then `topic payload`.
    pub fn next(&mut self, timeout: Duration) -> MqttMessage {
        let header = self.wait_line(|line| line.contains("received PUBLISH"), timeout);
        let qos = header
            .split(", q")
            .nth(1)
            .and_then(|rest| rest.chars().next())
            .and_then(|c| c.to_digit(10))
            .unwrap_or_else(|| panic!("no QoS in {header:?}")) as u8;
        // Debug lines (acks the subscriber sends) start with `Client `; the message follows them.
        let line = self.wait_line(|line| !line.starts_with("Client "), timeout);
        let (topic, payload) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        MqttMessage {
            topic: topic.to_string(),
            qos,
            payload: payload.to_string(),
        }
    }

    /// Whether a message arrives within `timeout`.
    pub fn nothing_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains("received PUBLISH") => return false,
                Ok(_) => continue,
                Err(_) => return true,
            }
        }
    }
}

impl Drop for MqttSubscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosquitto_starts_and_a_subscriber_sees_what_is_published() {
        let broker = MosquittoServer::start();
        let mut sub = broker.subscribe("t/1");
        let status = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()])
            .args(["-t", "t/1", "-q", "1", "-m", "hello there"])
            .status()
            .expect("mosquitto_pub");
        assert!(status.success());
        let msg = sub.next(Duration::from_secs(10));
        assert_eq!(
            msg,
            MqttMessage {
                topic: "t/1".into(),
                qos: 1,
                payload: "hello there".into()
            }
        );
    }
}
