// The inbox's sprinkles: keyboard shortcuts, small form helpers, and live updates.
// Pages work without this file; it only makes them quicker. HTML always comes
// from the server (htmx fragments); text from events goes in with textContent.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const inbox = $("#inbox");
  const csrfToken = ($('meta[name="csrf-token"]') || {}).content || "";
  const ticketId = inbox && inbox.dataset.ticketId ? Number(inbox.dataset.ticketId) : null;
  const userId = inbox ? Number(inbox.dataset.userId) : null;

  function format(template, values) {
    return (template || "").replace(/\{(\w+)\}/g, (_, key) => (key in values ? String(values[key]) : ""));
  }

  function ticketUrl(id) {
    const template = (inbox && inbox.dataset.ticketUrl) || "/tickets/0";
    return template.replace(/\/0$/, "/" + encodeURIComponent(String(Number(id))));
  }

  // ------------------------------------------------------------ small helpers

  function toast(text, href) {
    const region = $("#toasts");
    if (!region) return;
    const item = document.createElement(href ? "a" : "p");
    item.className = "toast";
    item.textContent = text;
    if (href) item.href = href;
    region.appendChild(item);
    setTimeout(() => item.remove(), 8000);
  }

  for (const flash of $$(".flashes .flash:not(.flash-error)")) {
    setTimeout(() => flash.remove(), 6000);
  }

  if (window.htmx) {
    document.body.addEventListener("htmx:configRequest", (event) => {
      event.detail.headers["X-CSRFToken"] = csrfToken;
    });
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const submitter = event.submitter;
    const question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (form.hasAttribute("data-submit-once")) {
      if (form.dataset.submitted) {
        event.preventDefault();
        return;
      }
      form.dataset.submitted = "1";
      stopTyping();
      // Disable after the browser has collected the fields, so the button's value is still sent.
      setTimeout(() => $$("button[type=submit]", form).forEach((b) => (b.disabled = true)), 0);
    }
  });

  // Properties save as soon as a select changes.
  document.addEventListener("change", (event) => {
    const form = event.target.closest && event.target.closest("form.autosubmit");
    if (form && event.target.tagName === "SELECT") form.requestSubmit();
  });

  // Ctrl/Cmd+Enter sends what you are writing.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.tagName === "TEXTAREA") {
      const form = event.target.form;
      if (form) {
        event.preventDefault();
        form.requestSubmit();
      }
    }
  });

  // ------------------------------------------------------------ composer

  function showTab(name) {
    for (const tab of $$(".composer-tabs [data-tab]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    }
    for (const panel of $$(".composer [data-panel]")) {
      panel.hidden = panel.dataset.panel !== name;
    }
  }

  if ($(".composer")) {
    // Open the note tab when the note form came back with an error.
    showTab($("#panel-note .field-error") ? "note" : "reply");
    for (const tab of $$(".composer-tabs [data-tab]")) {
      tab.addEventListener("click", () => {
        showTab(tab.dataset.tab);
        const box = $(tab.dataset.tab === "note" ? "#note-body" : "#reply-body");
        if (box) box.focus();
      });
    }
  }

  const cannedForm = $("form.canned");
  if (cannedForm) {
    const select = $("select[name=canned]", cannedForm);
    const insert = async () => {
      if (!select.value) return;
      const url = cannedForm.dataset.cannedUrl.replace(/\/0$/, "/" + encodeURIComponent(select.value));
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      const box = $("#reply-body");
      const start = box.selectionStart ?? box.value.length;
      box.value = box.value.slice(0, start) + data.body + box.value.slice(box.selectionEnd ?? start);
      box.focus();
      box.selectionStart = box.selectionEnd = start + data.body.length;
      select.value = "";
    };
    cannedForm.addEventListener("submit", (event) => {
      event.preventDefault();
      insert();
    });
    select.addEventListener("change", insert);
  }

  for (const chip of $$("[data-mention]")) {
    chip.addEventListener("click", () => {
      const box = $("#note-body");
      const before = box.value && !/\s$/.test(box.value) ? " " : "";
      box.value += before + "@" + chip.dataset.mention + " ";
      box.focus();
    });
  }

  // ------------------------------------------------------------ list and bulk

  function rows() {
    return $$("#ticket-list li.row");
  }

  function updateBulk() {
    const form = $("#bulk-form");
    if (!form) return;
    const count = $$("#ticket-list input.select:checked").length;
    $("[data-bulk-count]", form).textContent = String(count);
    form.classList.toggle("active", count > 0);
  }

  document.addEventListener("change", (event) => {
    if (event.target.matches && event.target.matches("#ticket-list input.select")) updateBulk();
  });

  let selected = null; // ticket id the keyboard cursor is on

  function select(row) {
    for (const r of rows()) r.classList.remove("selected");
    if (!row) return;
    row.classList.add("selected");
    selected = row.dataset.ticketId;
    const link = $(".row-link", row);
    if (link) link.focus({ preventScroll: false });
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    let index = all.findIndex((r) => r.dataset.ticketId === selected);
    if (index < 0) index = all.findIndex((r) => r.classList.contains("current"));
    index = index < 0 ? 0 : Math.min(all.length - 1, Math.max(0, index + step));
    select(all[index]);
  }

  function refreshList() {
    const list = $("#ticket-list");
    if (!list || !window.htmx) return;
    $("#list-updates").hidden = true;
    window.htmx.ajax("GET", list.dataset.listUrl, { target: "#ticket-list", swap: "innerHTML" });
  }

  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.target.id === "ticket-list" && selected) {
      const row = $(`#ticket-list li.row[data-ticket-id="${CSS.escape(selected)}"]`);
      if (row) row.classList.add("selected");
    }
    updateBulk();
  });

  let listTimer = null;
  function listChanged() {
    const list = $("#ticket-list");
    if (!list) return;
    // Refresh in place only on the first page with nothing ticked; otherwise offer it.
    const busy = list.dataset.firstPage !== "true" || $$("#ticket-list input.select:checked").length > 0;
    if (busy) {
      $("#list-updates").hidden = false;
      return;
    }
    clearTimeout(listTimer);
    listTimer = setTimeout(refreshList, 400);
  }

  const refreshLink = $("[data-action=refresh-list]");
  if (refreshLink && window.htmx) {
    refreshLink.addEventListener("click", (event) => {
      event.preventDefault();
      refreshList();
    });
  }

  // ------------------------------------------------------------ keyboard shortcuts

  function editing(target) {
    return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
  }

  function openHelp() {
    const dialog = $("#shortcuts");
    if (dialog && !dialog.open) dialog.showModal();
  }

  for (const button of $$("[data-action=shortcuts]")) button.addEventListener("click", openHelp);

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && editing(event.target)) {
      event.target.blur();
      return;
    }
    if (editing(event.target) || ($("#shortcuts") || {}).open) return;
    const actions = {
      j: () => move(1),
      k: () => move(-1),
      o: () => {
        const row = $("#ticket-list li.row.selected");
        if (row) window.location.href = $(".row-link", row).href;
      },
      x: () => {
        const box = $("#ticket-list li.row.selected input.select");
        if (box) {
          box.checked = !box.checked;
          updateBulk();
        }
      },
      r: () => {
        if (!$("#reply-body")) return;
        showTab("reply");
        $("#reply-body").focus();
      },
      n: () => {
        if (!$("#note-body")) return;
        showTab("note");
        $("#note-body").focus();
      },
      e: () => {
        const form = $("#solve-form");
        if (form) form.requestSubmit();
      },
      "/": () => {
        const search = $("#search");
        if (search) {
          search.focus();
          search.select();
        }
      },
      "?": openHelp,
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  // ------------------------------------------------------------ live updates

  let socket = null;
  let typingTimer = null;
  let typingSentAt = 0;

  function stopTyping() {
    if (socket && ticketId && typingSentAt) socket.emit("typing", { ticket_id: ticketId, is_typing: false });
    typingSentAt = 0;
    clearTimeout(typingTimer);
  }

  function renderPresence(viewers) {
    const box = $("#presence");
    if (!box) return;
    const others = viewers.filter((v) => v.id !== userId).map((v) => v.name);
    box.hidden = others.length === 0;
    box.textContent = others.length === 1
      ? format(inbox.dataset.msgViewing, { name: others[0] })
      : format(inbox.dataset.msgViewingMany, { names: others.join(", ") });
  }

  const typers = new Map();
  function renderTyping() {
    const box = $("#typing");
    if (!box) return;
    const names = Array.from(typers.values()).map((t) => t.name);
    box.hidden = names.length === 0;
    box.textContent = names.length ? format(inbox.dataset.msgTyping, { name: names.join(", ") }) : "";
  }

  function nearBottom(element) {
    return element.scrollHeight - element.scrollTop - element.clientHeight < 160;
  }

  function addMessage(messageId) {
    const thread = $("#thread");
    if (!thread || !window.htmx || document.getElementById("message-" + messageId)) return;
    const stick = nearBottom(thread);
    const empty = $("li.empty", thread);
    if (empty) empty.remove();
    window.htmx
      .ajax("GET", ticketUrl(ticketId) + "/messages/" + encodeURIComponent(messageId), {
        target: "#thread",
        swap: "beforeend",
      })
      .then(() => {
        if (stick) thread.scrollTop = thread.scrollHeight;
      });
  }

  function refreshMessage(messageId) {
    const element = document.getElementById("message-" + messageId);
    if (!element || !window.htmx) return;
    window.htmx.ajax("GET", ticketUrl(ticketId) + "/messages/" + encodeURIComponent(messageId), {
      target: element,
      swap: "outerHTML",
    });
  }

  function refreshProperties() {
    const panel = $("#properties");
    if (!panel || !window.htmx) return;
    // Never pull a form out from under someone using it.
    if (panel.contains(document.activeElement) && document.activeElement !== document.body) return;
    window.htmx.ajax("GET", panel.dataset.propertiesUrl, { target: "#properties", swap: "outerHTML" });
  }

  function connect() {
    if (!inbox || typeof window.io !== "function") return;
    socket = window.io("/agent", { withCredentials: true });
    const status = $("#live-status");

    socket.on("connect", () => {
      if (status) status.hidden = true;
      if (ticketId) socket.emit("view", { ticket_id: ticketId });
      document.documentElement.dataset.live = "connected";
    });
    socket.on("disconnect", () => {
      document.documentElement.dataset.live = "disconnected";
      if (status) {
        status.textContent = inbox.dataset.msgOffline;
        status.hidden = false;
      }
    });

    socket.on("presence", (data) => {
      if (data.ticket_id === ticketId) renderPresence(data.viewers || []);
    });
    socket.on("typing", (data) => {
      if (data.ticket_id !== ticketId || !data.user || data.user.id === userId) return;
      clearTimeout((typers.get(data.user.id) || {}).timer);
      if (data.is_typing) {
        const timer = setTimeout(() => {
          typers.delete(data.user.id);
          renderTyping();
        }, 6000);
        typers.set(data.user.id, { name: data.user.name, timer });
      } else {
        typers.delete(data.user.id);
      }
      renderTyping();
    });
    socket.on("message.new", (data) => {
      if (data.ticket_id !== ticketId) return;
      if (data.actor && typers.has(data.actor.id)) {
        typers.delete(data.actor.id);
        renderTyping();
      }
      addMessage(data.message_id);
    });
    socket.on("message.delivery", (data) => {
      if (data.ticket_id === ticketId) refreshMessage(data.message_id);
    });
    socket.on("ticket.updated", (data) => {
      if (data.ticket_id === ticketId) refreshProperties();
    });
    socket.on("ticket.merged", (data) => {
      if (data.merged_id === ticketId) {
        toast(format(inbox.dataset.msgMerged, { number: data.ticket_id }), ticketUrl(data.ticket_id));
      }
    });
    socket.on("ticket.created", listChanged);
    socket.on("ticket.activity", listChanged);
    socket.on("ticket.assigned", (data) => {
      const name = (data.actor && data.actor.name) || "";
      toast(format(inbox.dataset.msgAssigned, { name, number: data.ticket_id }), ticketUrl(data.ticket_id));
    });
    socket.on("mention", (data) => {
      const name = (data.actor && data.actor.name) || "";
      toast(format(inbox.dataset.msgMention, { name, number: data.ticket_id }), ticketUrl(data.ticket_id));
    });

    const box = $("#reply-body");
    if (box && ticketId) {
      box.addEventListener("input", () => {
        const now = Date.now();
        if (now - typingSentAt > 2500) {
          socket.emit("typing", { ticket_id: ticketId, is_typing: true });
          typingSentAt = now;
        }
        clearTimeout(typingTimer);
        typingTimer = setTimeout(stopTyping, 4000);
      });
      box.addEventListener("blur", stopTyping);
    }
  }

  connect();
  updateBulk();
})();
