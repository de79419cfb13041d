//! Servers in their own process. The parent re-executes `rpc-bench serve --system S --listen
//! 127.0.0.1:0`; the child prints `LISTENING <addr>` once its server is bound, then answers
//! control lines on stdin: `USAGE` gets `USAGE <user_us> <system_us> <allocations>` (its own
//! `getrusage(RUSAGE_SELF)` and the count of the counting global allocator, see
//! [`crate::alloc_count`]), and `QUIT` or end of input ends it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::cpu::{CpuTime, Usage};
use crate::systems::{self, BenchError, System};

/// A running server subprocess.
pub struct ServerProcess {
    system: System,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `system`'s server in a child process and waits for its address.
    pub fn spawn(system: System) -> Result<ServerProcess, BenchError> {
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command
            .args([
                "serve",
                "--system",
                system.name(),
                "--listen",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if matches!(system, System::RpcTls | System::TonicTls) {
            command.env(systems::rpc_tls::TLS_DIR_ENV, systems::rpc_tls::cert_dir()?);
        }
        die_with_parent(&mut command);
        let mut child = command.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("server process has no stdin/stdout pipe".into());
        };
        let mut process = ServerProcess {
            system,
            child,
            stdin,
            stdout: BufReader::new(stdout),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = process.read_line()?;
        process.addr = line
            .strip_prefix("LISTENING ")
            .ok_or_else(|| {
                format!(
                    "{} server said {line:?} instead of LISTENING",
                    system.name()
                )
            })?
            .trim()
            .parse()?;
        Ok(process)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server process's CPU time and allocations so far.
    pub fn usage(&mut self) -> Result<Usage, BenchError> {
        writeln!(self.stdin, "USAGE")?;
        self.stdin.flush()?;
        let line = self.read_line()?;
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some("USAGE"), Some(user), Some(system), Some(allocations)) => Ok(Usage {
                cpu: CpuTime::from_micros(user.parse()?, system.parse()?),
                allocations: allocations.parse()?,
            }),
            _ => Err(format!("{} server answered {line:?} to USAGE", self.system.name()).into()),
        }
    }

    fn read_line(&mut self) -> Result<String, BenchError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(format!("{} server process exited", self.system.name()).into());
        }
        Ok(line.trim_end().to_string())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "QUIT");
        let _ = self.stdin.flush();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes the child get SIGKILL when the parent dies, so no server outlives a crashed run.
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and only sets a flag on the child.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// The `serve` subcommand: runs `system`'s server until told to quit.
pub fn serve_main(system: System, listen: &str) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (addr, guard) = runtime.block_on(systems::serve(system, listen))?;
    let stdout = std::io::stdout();
    {
        let mut out = stdout.lock();
        writeln!(out, "LISTENING {addr}")?;
        out.flush()?;
    }
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        match line.trim() {
            "USAGE" => {
                let usage = Usage::current();
                let (user, system) = usage.cpu.to_micros();
                let mut out = stdout.lock();
                writeln!(out, "USAGE {user} {system} {}", usage.allocations)?;
                out.flush()?;
            }
            "QUIT" => break,
            other => eprintln!("rpc-bench serve: unknown control line {other:?}"),
        }
    }
    drop(guard);
    // Do not wait for connection tasks to wind down: the parent is done with us.
    runtime.shutdown_background();
    Ok(())
}
