use super::*;

/// The summary serves stored records: a field added to `TaskRecord` must
/// come with a new [`FORMAT`], or old lines would serve records without it.
#[test]
fn the_format_names_the_record_it_stores() {
    let record: TaskRecord = serde_json::from_str(
        r#"{"id":"bccb91","name":null,"command":"true","cwd":"/","state":"exited",
        "exit_code":0,"signal":null,"pid":1,"started_at":null,"ended_at":null,
        "duration_ms":null,"output_path":"/x","timeout_ms":null,"argv":[]}"#,
    )
    .expect("a record");
    let json = serde_json::to_value(&record).expect("serialisable");
    let keys: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let pinned = "after,after_ok,argv,command,cwd,duration_ms,ended_at,error,exit_code,\
        group_alive,id,input_path,name,next_run_at,output_bytes,output_cap,output_cap_method,\
        output_dropped_bytes,output_path,output_removed,pgid,pid,ports,previous_runs,queue,reason,\
        restart,restarts,run_started_at,signal,silent_ms,started_at,state,supervisor_pid,\
        timeout_ms,waiting_for";
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted.join(","),
        pinned,
        "TaskRecord changed: bump summary::FORMAT, then update this list"
    );
    assert_eq!(FORMAT, 5);
}
