// The chat widget (rasa-webchat, vendored) on the website: where Rasa's socket.io is and
// who is signed in come from the page (#chat-config, written by the server); everything
// the customer writes carries the page's context as metadata.
(function () {
  "use strict";

  var SESSION_KEY = "chat_session"; // where rasa-webchat keeps the conversation
  var OWNER_KEY = "chat_owner"; // the signed-in customer who began it

  var config = JSON.parse(document.getElementById("chat-config").textContent);

  // A conversation begun by a signed-in customer holds their verified account: after they
  // sign out (or someone else signs in on this computer) the next one starts afresh.
  var owner = sessionStorage.getItem(OWNER_KEY) || "";
  if (owner && owner !== config.owner) {
    sessionStorage.removeItem(SESSION_KEY);
  }
  sessionStorage.setItem(OWNER_KEY, config.owner);

  var customData = { page_url: window.location.href, page_title: document.title };
  if (config.customer) {
    customData.customer = config.customer;
  }

  window.WebChat.default(
    {
      socketUrl: config.socketUrl,
      socketPath: config.socketPath,
      initPayload: "/greet",
      customData: customData,
      title: "95598 智能客服",
      subtitle: "国网清源市供电公司 · 在线服务",
      inputTextFieldHint: "请输入您的问题，例如：查电费",
      connectingText: "正在连接在线客服…",
      // the conversation survives a reload, and ends with the tab (shared computers)
      params: { storage: "session" },
      withRules: false,
      hideWhenNotConnected: false,
      showFullScreenButton: false,
      customMessageDelay: function (message) {
        return Math.min(1200, 300 + (message || "").length * 10);
      },
    },
    document.getElementById("chat-widget")
  );

  function openChat(event) {
    event.preventDefault();
    if (!document.querySelector(".rw-conversation-container")) {
      var launcher = document.querySelector(".rw-launcher");
      if (launcher) {
        launcher.click();
      }
    }
  }
  document.querySelectorAll(".open-chat").forEach(function (link) {
    link.addEventListener("click", openChat);
  });
})();
