// The arena's battle page, streamed: a prompt form that carries data-stream-url is sent with fetch to that URL
// (the same fields as its normal post, CSRF token included), and both answers are shown while they are generated.
// The server paces the two answers together, so they grow in step; text is written with text nodes only (never as
// HTML). When the turn is stored the page is loaded again, which shows the stored turn and the vote form. Without
// script, or where fetch streaming is missing, the form posts normally.
//
// What the page provides:
//   <form data-stream-url="/arena/K/S/b/T/stream" action="/arena/K/S/b/T/ask" ...>  each prompt form to stream
//     optional data-done-url (where to go when the turn is stored; default: the battle page with ?done=done_ar_asked)
//     optional data-label-a / data-label-b (headings of the live answers; default "A" / "B")
//     optional data-error-text (shown before a failure's message)
//   <pre id="answer-a"></pre> <pre id="answer-b"></pre>  optional: where the live answers go; made when absent,
//     inside a <section id="ar-live" class="ar-pair"> placed before the form's card.
(function () {
  "use strict";

  function liveBoxes(form) {
    var a = document.getElementById("answer-a");
    var b = document.getElementById("answer-b");
    if (a && b) {
      return [a, b];
    }
    var live = document.createElement("section");
    live.id = "ar-live";
    live.className = "ar-pair";
    live.setAttribute("aria-live", "polite");
    var boxes = [];
    [["a", form.dataset.labelA || "A"], ["b", form.dataset.labelB || "B"]].forEach(function (pair) {
      var answer = document.createElement("section");
      answer.className = "ar-answer";
      var head = document.createElement("h3");
      head.textContent = pair[1];
      var box = document.createElement("pre");
      box.id = "answer-" + pair[0];
      box.className = "ar-text ar-live-text";
      box.style.whiteSpace = "pre-wrap";
      answer.appendChild(head);
      answer.appendChild(box);
      live.appendChild(answer);
      boxes.push(box);
    });
    var card = form.closest("section") || form;
    card.parentNode.insertBefore(live, card);
    return boxes;
  }

  function showError(form, message) {
    var note = form.parentNode.querySelector(".ar-stream-error");
    if (!note) {
      note = document.createElement("p");
      note.className = "error ar-stream-error";
      note.setAttribute("role", "alert");
      form.parentNode.insertBefore(note, form);
    }
    note.textContent = (form.dataset.errorText ? form.dataset.errorText + " " : "") + message;
  }

  function doneUrl(form) {
    if (form.dataset.doneUrl) {
      return form.dataset.doneUrl;
    }
    var battle = form.getAttribute("action").replace(/\/ask$/, "");
    return battle + "?done=done_ar_asked#answers";
  }

  function reload(url) {
    var target = new URL(url, window.location.href);
    var here = new URL(window.location.href);
    if (target.pathname === here.pathname && target.search === here.search) {
      window.location.reload();
    } else {
      window.location.assign(target.href);
    }
  }

  function setBusy(form, busy) {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-stream-url]"), function (f) {
      Array.prototype.forEach.call(f.elements, function (el) {
        el.disabled = busy;
      });
      if (busy) {
        f.setAttribute("aria-busy", "true");
      } else {
        f.removeAttribute("aria-busy");
      }
    });
    form.dataset.streaming = busy ? "1" : "";
  }

  // Each event is `data: {json}` followed by a blank line; returns the events complete in `buffer` and the rest.
  function takeEvents(buffer) {
    var events = [];
    var end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      var block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      var data = block.split("\n").filter(function (line) {
        return line.indexOf("data:") === 0;
      }).map(function (line) {
        return line.slice(5).replace(/^ /, "");
      }).join("\n");
      if (data) {
        events.push(JSON.parse(data));
      }
    }
    return [events, buffer];
  }

  async function stream(form, submitter) {
    var body;
    try {
      body = new FormData(form, submitter);
    } catch (err) {
      body = new FormData(form);
    }
    setBusy(form, true);
    var boxes = null;
    var finished = false;
    try {
      var response = await fetch(form.dataset.streamUrl, {
        method: "POST", body: body, credentials: "same-origin", headers: {"Accept": "text/event-stream"}
      });
      var type = response.headers.get("content-type") || "";
      if (!response.body || type.indexOf("text/event-stream") !== 0) {
        throw new Error("HTTP " + response.status);
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      for (;;) {
        var chunk = await reader.read();
        buffer += chunk.done ? decoder.decode() : decoder.decode(chunk.value, {stream: true});
        var taken = takeEvents(buffer + (chunk.done ? "\n\n" : ""));
        buffer = taken[1];
        for (var i = 0; i < taken[0].length; i++) {
          var event = taken[0][i];
          if (event.error) {
            throw new Error(String(event.error));
          }
          if (event.done) {
            finished = true;
          } else if (event.side === "a" || event.side === "b") {
            boxes = boxes || liveBoxes(form);
            boxes[event.side === "a" ? 0 : 1].appendChild(document.createTextNode(String(event.text || "")));
          }
        }
        if (chunk.done) {
          break;
        }
      }
      if (!finished) {
        throw new Error("the answers stopped before they were complete");
      }
      reload(doneUrl(form));
    } catch (err) {
      setBusy(form, false);
      showError(form, err && err.message ? err.message : String(err));
    }
  }

  function enhance() {
    if (!window.fetch || !window.ReadableStream || !window.TextDecoder) {
      return;  // the normal form post
    }
    Array.prototype.forEach.call(document.querySelectorAll("form[data-stream-url]"), function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (form.dataset.streaming !== "1") {
          stream(form, event.submitter || null);
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", enhance);
  } else {
    enhance();
  }
})();
