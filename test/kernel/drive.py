"""Drives the installed "tsparallel" kernelspec with jupyter_client, as a notebook frontend does.

Reads a JSON list of steps on stdin and prints, as JSON, what the kernel sent for each:
  {"op": "execute", "code": ..., "interrupt_on": TEXT?}  -> reply content and the IOPub messages
      of the request, busy to idle; with interrupt_on, the kernel is interrupted (SIGINT, as
      Jupyter does) once a stream containing TEXT arrives.
  {"op": "kernel_info"} / {"op": "comm_info"}              -> reply content
  {"op": "comm_open", "comm_id": ID}                        -> comm messages until the first state
  {"op": "comm_send", "comm_id": ID, "data": {...}}         -> comm messages until the command's
      reply and the state that follows it; an "id" of "$PENDING" becomes the id of a task still
      pending in the last state received, "$LAST" the id of its newest task
  {"op": "comm_until", "comm_id": ID, "task": "$LAST", "state": S}
                                                            -> comm messages until a state in which
      that task (picked as comm_send picks it) has state S; none if the last state shows it already
"""
import json
import queue
import sys
import time
import uuid

from jupyter_client.manager import start_new_kernel

TIMEOUT = 120
last_state = {}


def main():
    steps = json.load(sys.stdin)
    km, kc = start_new_kernel(kernel_name="tsparallel", startup_timeout=TIMEOUT)
    results = []
    try:
        for step in steps:
            try:
                results.append(run(km, kc, step))
            except Exception as e:
                raise RuntimeError(f"step {json.dumps(step)} failed") from e
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    json.dump(results, sys.stdout)


def iopub_until(kc, done):
    """IOPub messages as [type, content, parent msg_id] until done(msg) is true; TimeoutError
    after TIMEOUT s even while messages keep coming (a progress bar redrawn forever)."""
    deadline = time.monotonic() + TIMEOUT
    seen = []
    while True:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise queue.Empty
            msg = kc.get_iopub_msg(timeout=left)
        except queue.Empty:
            raise TimeoutError(f"no end after {TIMEOUT} s; the kernel sent: {json.dumps(seen)[-3000:]}")
        seen.append([msg["msg_type"], msg["content"], msg["parent_header"].get("msg_id")])
        if done(msg):
            return seen


def reply_to(kc, msg_id):
    """The shell reply to msg_id, skipping leftovers such as start-up kernel_info replies."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no reply to {msg_id} after {TIMEOUT} s")
        reply = kc.get_shell_msg(timeout=left)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def pick_task(which):
    """A task id from the last state: "$PENDING" a pending one, "$LAST" the newest."""
    tasks = last_state["tasks"]
    if which == "$LAST":
        return tasks[-1]["id"]
    if which == "$PENDING":
        return [t["id"] for t in tasks if t["state"] == "pending"][0]
    return which


def run(km, kc, step):
    op = step["op"]
    if op == "execute":
        msg_id = kc.execute(step["code"])
        interrupted = False
        printed = 0

        def done(msg):
            nonlocal interrupted, printed
            if msg["parent_header"].get("msg_id") != msg_id:
                return False
            if step.get("interrupt_on"):
                printed += msg["content"].get("text", "").count(step["interrupt_on"])
            if not interrupted and step.get("interrupt_on") and printed >= step.get("engines", 1):
                km.interrupt_kernel()
                interrupted = True
            return msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"

        seen = [m for m in iopub_until(kc, done) if m[2] == msg_id]
        reply = reply_to(kc, msg_id)
        return {"reply": reply["content"], "iopub": [m[:2] for m in seen]}
    if op == "kernel_info":
        return reply_to(kc, kc.kernel_info())["content"]
    if op == "comm_info":
        msg = kc.session.msg("comm_info_request", {"target_name": "tsparallel"})
        kc.shell_channel.send(msg)
        reply = reply_to(kc, msg["header"]["msg_id"])
        return {"msg_type": reply["msg_type"], "content": reply["content"]}
    comm_id = step["comm_id"]

    def comm_data(msgs):
        data = [m[1]["data"] for m in msgs if m[0] == "comm_msg" and m[1]["comm_id"] == comm_id]
        for d in data:
            if d["type"] == "state":
                last_state.update(d["state"])
        return data

    if op == "comm_open":
        kc.shell_channel.send(
            kc.session.msg("comm_open", {"comm_id": comm_id, "target_name": "tsparallel", "data": {}})
        )
        msgs = iopub_until(kc, lambda m: m["msg_type"] == "comm_msg" and m["content"]["data"]["type"] == "state")
        return comm_data(msgs)
    if op == "comm_until":
        task = pick_task(step["task"])

        def reached(state):
            return any(t["id"] == task and t["state"] == step["state"] for t in state["tasks"])

        if reached(last_state):
            return []
        return comm_data(
            iopub_until(
                kc,
                lambda m: m["msg_type"] == "comm_msg"
                and m["content"]["data"]["type"] == "state"
                and reached(m["content"]["data"]["state"]),
            )
        )
    if op == "comm_send":
        if step["data"].get("id") in ("$PENDING", "$LAST"):
            step["data"]["id"] = pick_task(step["data"]["id"])
        kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": comm_id, "data": step["data"]}))
        replied = False

        def done(m):
            nonlocal replied
            if m["msg_type"] != "comm_msg":
                return False
            data = m["content"]["data"]
            if data["type"] == "reply" and data["requestId"] == step["data"].get("requestId", ""):
                replied = True
                return False
            return replied and data["type"] == "state"

        return comm_data(iopub_until(kc, done))
    raise ValueError(f"unknown step {op}")


if __name__ == "__main__":
    main()
