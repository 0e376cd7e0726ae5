/* The trainers' inbox: the topic is asked only when the intent is a new one; a label
 * takes about ten seconds (the data is validated), so the form says it is checking; an
 * item whose label was refused is scrolled into view with its reasons. */
(function () {
  "use strict";
  var inbox = document.getElementById("inbox");
  if (!inbox) return;
  var known = {};
  var options = document.querySelectorAll("#intent-names option");
  for (var i = 0; i < options.length; i++) known[options[i].value] = true;

  function showTopic(form) {
    var intent = form.querySelector('input[name="intent"]');
    var topic = form.querySelector(".topic-field");
    var name = intent ? intent.value.trim() : "";
    if (topic) topic.hidden = !name || known[name] === true;
  }

  Array.prototype.forEach.call(inbox.querySelectorAll("form.label-form"), function (form) {
    showTopic(form);
    form.addEventListener("input", function () { showTopic(form); });
    form.addEventListener("submit", function () {
      var button = form.querySelector("button.label-accept");
      var checking = form.querySelector(".checking");
      // once the browser has taken the form's values: a second click would only wait twice
      window.setTimeout(function () {
        button.disabled = true;
        if (checking) checking.hidden = false;
      }, 0);
    });
  });

  var refused = inbox.querySelector(".inbox-item.refused");
  if (refused) refused.scrollIntoView({ block: "start" });
})();
