// Extra networks cards: a click adds the card's text to the tab's prompt (or takes it out when it is there, as
// A1111's cards do); a checkpoint card loads that checkpoint; the search box hides cards that do not match.
(function () {
    "use strict";

    function setValue(textarea, value) {
        textarea.value = value;
        textarea.dispatchEvent(new Event("input", {bubbles: true}));  // Gradio reads the box on input
    }

    window.sduiCardClicked = function (tab, card) {
        const app = gradioApp();
        if (card.dataset.kind === "checkpoints") {
            const box = app.querySelector("#" + tab + "_extra_networks_checkpoint textarea");
            const button = app.querySelector("#" + tab + "_extra_networks_select");
            if (box && button) {
                setValue(box, card.dataset.name);
                setTimeout(() => button.click(), 50);
            }
            return;
        }
        const textarea = app.querySelector("#" + tab + "_prompt textarea");
        const text = card.dataset.prompt;
        if (!textarea || !text) return;
        const current = textarea.value;
        if (current.includes(text)) {
            setValue(textarea, current.replace(text, "").replace(/  +/g, " ").trim());
        } else {
            setValue(textarea, current.trim() ? current.trimEnd() + " " + text : text);
        }
    };

    window.sduiFilterCards = function (input) {
        const query = input.value.trim().toLowerCase();
        const panel = input.closest(".extra-network-panel");
        for (const card of panel.querySelectorAll(".extra-network-card")) {
            const text = (card.dataset.name + " " + card.title).toLowerCase();
            card.style.display = !query || text.includes(query) ? "" : "none";
        }
    };
})();
