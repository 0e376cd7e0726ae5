/* The queue: replaced whenever the server's event stream sends a new snapshot; the claim
 * button posts with the CSRF token and opens the conversation, or says who was first. */
(function () {
  "use strict";
  var table = document.getElementById("queue");
  if (!table || !window.Console) return;
  var C = window.Console;
  var body = document.getElementById("queue-body");
  var empty = document.getElementById("queue-empty");
  var message = document.getElementById("queue-message");

  function cell(label, className, text) {
    var td = C.el("td", className, text);
    td.setAttribute("data-label", label);
    return td;
  }

  function link(href, className, text) {
    var a = C.el("a", className, text);
    a.href = href;
    return a;
  }

  function row(item) {
    var href = "/tickets/" + encodeURIComponent(item.number);
    var tr = C.el("tr", "queue-item priority-" + item.priority + (item.live ? " live" : ""));
    tr.setAttribute("data-ticket", item.number);

    var number = cell("工单号");
    var numberBox = C.el("div");
    numberBox.appendChild(link(href, "number", item.number));
    numberBox.appendChild(C.el("span", "sub", item.request_type));
    number.appendChild(numberBox);
    tr.appendChild(number);
    tr.appendChild(cell("类别", "category", item.category_name));
    var priority = cell("优先级");
    priority.appendChild(C.el("span", "priority " + item.priority, item.priority_name));
    tr.appendChild(priority);
    tr.appendChild(cell("状态", "status", item.status_name));
    tr.appendChild(cell("会话", "state state-" + (item.state || "none"), item.state_name));
    tr.appendChild(cell("情绪", "frustration level-" + item.frustration, item.frustration_word));
    tr.appendChild(cell("处理人", "holder", item.holder_name || "—"));
    var sla = cell("时限");
    var clock = C.el("span", "sla");
    clock.setAttribute("data-due", item.sla_due_at);
    sla.appendChild(clock);
    tr.appendChild(sla);
    var last = cell("最新消息", "last");
    var said = C.el("div");
    if (item.last_message) {
      said.appendChild(C.el("span", "who", item.last_message.speaker_name + "："));
      said.appendChild(document.createTextNode(item.last_message.text));
    } else {
      said.textContent = item.summary;
    }
    last.appendChild(said);
    tr.appendChild(last);

    var actions = cell("操作", "actions");
    if (item.claimable) {
      var form = C.el("form", "claim-form");
      form.method = "post";
      form.action = href + "/claim";
      var token = C.el("input");
      token.type = "hidden";
      token.name = "csrf_token";
      token.value = C.csrf();
      form.appendChild(token);
      var button = C.el("button", "claim primary", "接单");
      button.type = "submit";
      form.appendChild(button);
      actions.appendChild(form);
    } else if (item.mine) {
      actions.appendChild(link(href, "button open", "继续处理"));
    } else {
      actions.appendChild(link(href, "button view", "查看"));
    }
    tr.appendChild(actions);
    return tr;
  }

  function render(snapshot) {
    C.setServerNow(snapshot.now);
    var rows = document.createDocumentFragment();
    snapshot.items.forEach(function (item) { rows.appendChild(row(item)); });
    body.replaceChildren(rows);
    empty.hidden = snapshot.items.length > 0;
    C.tick();
  }

  body.addEventListener("submit", function (event) {
    var form = event.target.closest("form.claim-form");
    if (!form) return;
    event.preventDefault();
    var button = form.querySelector("button");
    button.disabled = true;
    C.post(form.action).then(function (result) {
      if (result.ok && result.data.location) {
        window.location.href = result.data.location;
        return;
      }
      message.textContent = result.data.error || "接单失败，请稍后重试";
      message.hidden = false;
      button.disabled = false;
    });
  });

  C.liveStream(table.getAttribute("data-stream"), document.getElementById("queue-status"), { queue: render });
})();
