//! The hosts view (F2): its snapshot with the config file's servers listed and this machine
//! marked, the notice when none is configured, and what its keys ask for.

use crossterm::event::{KeyCode, KeyModifiers};
use pallaidium::jobs::{JobEvent, JobId};
use pallaidium::tui::app::{Command, QuitMode};
use pallaidium::tui::event::AppEvent;
use pallaidium::tui::hosts::{HostEntry, HostsView, Target};

use crate::tui::{key, render};
use crate::tui_snapshots::app;

fn hosts() -> Vec<HostEntry> {
    vec![
        HostEntry {
            name: "gpu-box".into(),
            url: "http://gpu-box:7860".into(),
            token_file: Some("/home/me/gpu.token".into()),
        },
        HostEntry {
            name: "mac-mini".into(),
            url: "http://mac-mini.local:7860".into(),
            token_file: None,
        },
    ]
}

fn none() -> KeyModifiers {
    KeyModifiers::NONE
}

#[test]
fn f2_lists_the_hosts_and_enter_switches_to_one() {
    let mut a = app("512x512");
    a.hosts = HostsView::new(
        hosts(),
        &Target::Local,
        "/home/me/.pallaidium/config.toml".into(),
    );
    key(&mut a, KeyCode::F(2), none());
    key(&mut a, KeyCode::Down, none());
    insta::assert_snapshot!("hosts_100x30", render(&mut a, 100, 30).backend());
    let commands = key(&mut a, KeyCode::Enter, none());
    assert!(
        commands.contains(&Command::Quit(QuitMode::Switch(1))),
        "{commands:?}"
    );
    assert_eq!(a.quit(), Some(QuitMode::Switch(1)));
    assert_eq!(a.hosts.target(1), Target::Remote(hosts()[0].clone()));
}

#[test]
fn without_hosts_the_view_says_where_to_add_them_and_esc_closes_it() {
    let mut a = app("512x512");
    a.hosts = HostsView::new(
        Vec::new(),
        &Target::Local,
        "/home/me/.pallaidium/config.toml".into(),
    );
    key(&mut a, KeyCode::F(2), none());
    let screen = format!("{:?}", render(&mut a, 100, 30).backend());
    assert!(screen.contains("no servers: add [[hosts]]"), "{screen}");
    assert!(
        screen.contains("/home/me/.pallaidium/config.toml"),
        "{screen}"
    );
    assert!(
        key(&mut a, KeyCode::Enter, none()).is_empty(),
        "already on it"
    );
    let screen = format!("{:?}", render(&mut a, 100, 30).backend());
    assert!(
        !screen.contains("Hosts: where jobs run"),
        "closed:\n{screen}"
    );
}

#[test]
fn leaving_this_machine_waits_for_its_jobs() {
    let mut a = app("512x512");
    a.hosts = HostsView::new(hosts(), &Target::Local, "config.toml".into());
    a.handle(AppEvent::Job(JobEvent::Queued {
        job: JobId(1),
        position: 0,
    }));
    key(&mut a, KeyCode::F(2), none());
    key(&mut a, KeyCode::Down, none());
    let commands = key(&mut a, KeyCode::Enter, none());
    assert!(
        !commands.iter().any(|c| matches!(c, Command::Quit(_))),
        "{commands:?}"
    );
    assert_eq!(a.quit(), None);
    let screen = format!("{:?}", render(&mut a, 160, 30).backend());
    assert!(
        screen.contains("1 job(s) queued or running here"),
        "{screen}"
    );
}
