/* The conversation view: new lines arrive over the event stream; the reply is posted by
 * script and shown at once (or marked as not delivered); "显示" fetches the unmasked
 * personal data; "标记给训练师" flags a customer's line without leaving the page. Every
 * piece of text is set with textContent. */
(function () {
  "use strict";
  var article = document.getElementById("ticket");
  if (!article || !window.Console) return;
  var C = window.Console;
  var transcript = document.getElementById("transcript");
  var divider = document.getElementById("handoff-divider");
  var number = article.getAttribute("data-number");
  var flagged = {}; // ids of the customer's lines flagged on this page

  function scrollDown() {
    transcript.scrollTop = transcript.scrollHeight;
  }

  function line(m) {
    var li = C.el("li", "line " + m.speaker + (m.error ? " failed" : ""));
    li.setAttribute("data-id", String(m.id));
    li.appendChild(C.el("span", "who", m.speaker_name + (m.author_name ? " · " + m.author_name : "")));
    li.appendChild(C.el("time", "at", m.at_text));
    li.appendChild(C.el("p", "text", m.text));
    if (m.speaker === "agent" && m.error) {
      li.appendChild(C.el("p", "delivery error", "发送失败：" + m.error));
    } else if (m.speaker === "agent" && !m.delivered) {
      li.appendChild(C.el("p", "delivery pending", "发送中…"));
    }
    if (m.speaker === "customer") li.appendChild(flagged[m.id] ? C.el("span", "flagged", "已标记") : flagForm(m.id));
    return li;
  }

  // the same form the page renders (it works without this script too)
  function flagForm(id) {
    var form = C.el("form", "flag-form");
    form.method = "post";
    form.action = "/tickets/" + encodeURIComponent(number) + "/messages/" + Number(id) + "/flag";
    var token = C.el("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = C.csrf();
    var button = C.el("button", "flag", "标记给训练师");
    button.type = "submit";
    button.title = "机器人没听懂这句话？交给训练师教它";
    form.appendChild(token);
    form.appendChild(button);
    return form;
  }

  transcript.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("flag-form")) return;
    event.preventDefault();
    var button = form.querySelector("button");
    button.disabled = true;
    C.post(form.action).then(function (result) {
      if (result.ok) {
        flagged[result.data.flagged] = true;
        form.replaceWith(C.el("span", "flagged", "已标记"));
        return;
      }
      button.disabled = false;
      button.textContent = "标记失败，重试";
      button.title = result.data.error || "标记失败，请稍后重试";
    });
  });

  function upsert(m) {
    var existing = transcript.querySelector('li[data-id="' + Number(m.id) + '"]');
    var fresh = line(m);
    if (existing) {
      existing.replaceWith(fresh);
    } else {
      transcript.appendChild(fresh);
      if (divider) divider.hidden = false;
      scrollDown();
    }
    var retry = document.getElementById("retry-form");
    if (retry) retry.hidden = !transcript.querySelector("li.line.failed");
  }

  function state(s) {
    var status = document.getElementById("ticket-status");
    var handoff = document.getElementById("handoff-state");
    var holder = document.getElementById("holder");
    if (status) status.textContent = s.status_name;
    if (handoff) {
      handoff.textContent = s.state_name;
      handoff.className = "state state-" + (s.state || "none");
    }
    if (holder) holder.textContent = s.holder_name || "未接单";
    var mood = document.getElementById("frustration");
    if (mood) {
      mood.textContent = s.frustration_word + "（" + s.frustration + "/3）";
      mood.className = "frustration level-" + s.frustration;
    }
  }

  var stream = article.getAttribute("data-stream") + "?after=" + encodeURIComponent(article.getAttribute("data-after"));
  C.liveStream(stream, null, { message: upsert, state: state });
  scrollDown();

  var reply = document.getElementById("reply-form");
  if (reply) {
    var text = document.getElementById("reply-text");
    var send = document.getElementById("reply-send");
    var error = document.getElementById("reply-error");
    reply.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!text.value.trim()) return;
      send.disabled = true;
      error.hidden = true;
      C.post(reply.action, { text: text.value }).then(function (result) {
        send.disabled = false;
        if (!result.ok) {
          error.textContent = result.data.error || "发送失败，请稍后重试";
          error.hidden = false;
          return;
        }
        upsert(result.data.message);
        text.value = "";
        if (result.data.message.error) {
          error.textContent = "回复未能送达客户：" + result.data.message.error + "。可稍后点“重新发送”。";
          error.hidden = false;
        }
      });
    });
  }

  var pii = document.getElementById("pii-form");
  if (pii) {
    pii.addEventListener("submit", function (event) {
      event.preventDefault();
      C.post(pii.action).then(function (result) {
        if (!result.ok) return;
        Object.keys(result.data.values).forEach(function (key) {
          var field = document.querySelector('[data-pii="' + key.replace(/[^a-z_]/g, "") + '"]');
          if (field) field.textContent = result.data.values[key];
        });
        pii.hidden = true;
      });
    });
  }
})();
