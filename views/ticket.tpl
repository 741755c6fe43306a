{{%AUTOESCAPE context="HTML"}}
<article class="ticket stack" aria-labelledby="ticket-h">
<header class="ticket-head">
<p class="crumb"><a href="/tickets">Back to tickets</a></p>
<h1 id="ticket-h"><span class="ticket-num">#{{ID}}</span> {{SUBJECT}}</h1>
</header>
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<section class="card" aria-labelledby="props-h">
<h2 id="props-h" class="visually-hidden">Details</h2>
<dl class="props ticket-props">
<div><dt>Status</dt><dd><span class="badge badge-{{STATUS}}">{{STATUS}}</span></dd></div>
<div><dt>Priority</dt><dd><span class="prio prio-{{PRIORITY}}">{{PRIORITY}}</span></dd></div>
<div><dt>Created</dt><dd><time datetime="{{CREATED_ISO}}" title="{{CREATED_TEXT}}">{{CREATED_AGO}}</time></dd></div>
<div><dt>Last activity</dt><dd><time datetime="{{ACTIVITY_ISO}}" title="{{ACTIVITY_TEXT}}">{{ACTIVITY_AGO}}</time></dd></div>
{{#SHOW_CUSTOMER}}
<div><dt>Customer</dt><dd><a href="/tickets?customer={{CUSTOMER_ID}}">{{CUSTOMER}}</a><br><span class="muted">{{CUSTOMER_EMAIL}}</span></dd></div>
{{/SHOW_CUSTOMER}}
<div><dt>Agent</dt><dd>{{AGENT}}</dd></div>
{{#SLA_BOX}}
{{#SLA_ROW}}
<div class="sla-row"><dt>{{LABEL}}</dt><dd>{{#DUE}}<span class="sla{{#SLA_OVERDUE}} sla-overdue{{/SLA_OVERDUE}}"><time datetime="{{SLA_ISO}}">{{SLA_TEXT}}</time></span>{{/DUE}}{{NOTE}}</dd></div>
{{/SLA_ROW}}
{{/SLA_BOX}}
</dl>
</section>
{{#HISTORY}}
<section class="card" aria-labelledby="history-h">
<h2 id="history-h">Other tickets of {{CUSTOMER}}</h2>
{{#NO_OTHER}}
<p class="empty">This is their only ticket</p>
{{/NO_OTHER}}
<ul class="history-list">
{{#OTHER}}
<li><a href="/tickets/{{OTHER_ID}}"><span class="ticket-num">#{{OTHER_ID}}</span> {{OTHER_SUBJECT}}</a> <span class="badge badge-{{OTHER_STATUS}}">{{OTHER_STATUS}}</span> <time datetime="{{OTHER_ISO}}" title="{{OTHER_TEXT}}">{{OTHER_AGO}}</time></li>
{{/OTHER}}
</ul>
<p><a href="/tickets?customer={{CUSTOMER_ID}}">All tickets of {{CUSTOMER}}</a></p>
</section>
{{/HISTORY}}
<section class="card" aria-labelledby="desc-h">
<h2 id="desc-h">Description</h2>
<div class="ticket-desc">{{DESCRIPTION:pre_escape}}</div>
{{#ATTACHMENTS}}
<ul class="attachments" aria-label="Attachments">
{{#ATTACHMENT}}
<li class="attachment">{{#PREVIEW}}<a href="{{URL}}" class="attachment-preview" aria-label="Preview of {{NAME}}"><img src="{{URL}}" alt="" loading="lazy" width="160" height="120"></a>{{/PREVIEW}}<a href="{{URL}}" class="attachment-name">{{NAME}}</a> <span class="attachment-size muted">{{SIZE}}</span></li>
{{/ATTACHMENT}}
</ul>
{{/ATTACHMENTS}}
</section>
<section aria-labelledby="conv-h">
<h2 id="conv-h">Conversation</h2>
<ol class="thread" id="thread" data-poll="/tickets/{{ID}}/messages" data-after="{{LAST_SEQ}}" aria-live="polite" aria-labelledby="conv-h">
{{>THREAD}}
</ol>
{{#NO_MESSAGES}}
<p class="empty" id="no-messages">No messages yet</p>
{{/NO_MESSAGES}}
{{#CAN_REPLY}}
{{#SAVED_REPLIES}}
<form class="reply-tools" method="get" action="/tickets/{{ID}}" data-insert-into="reply-body">
<div class="field">
<label for="saved-reply">Saved reply</label>
<select id="saved-reply" name="reply" required>
<option value="">Choose a saved reply</option>
{{#SAVED_REPLY}}
<option value="{{REPLY_ID}}" data-body="{{REPLY_BODY}}">{{REPLY_TITLE}}{{#SHARED}} (shared){{/SHARED}}</option>
{{/SAVED_REPLY}}
</select>
</div>
<button type="submit" class="btn">Insert reply</button>
<a class="btn btn-ghost" href="/replies">Manage saved replies</a>
</form>
{{/SAVED_REPLIES}}
<form class="form card reply-form" method="post" action="/tickets/{{ID}}/messages" enctype="multipart/form-data" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<div class="field">
<label for="reply-body">Your reply</label>
<textarea id="reply-body" name="body" rows="5" maxlength="10000" required data-draft-key="ticket-{{ID}}"{{#ERR_BODY}} aria-invalid="true" aria-describedby="reply-body-error"{{/ERR_BODY}}>
{{BODY_DRAFT:pre_escape}}</textarea>
{{#ERR_BODY}}
<p class="field-error" id="reply-body-error">{{MSG}}</p>
{{/ERR_BODY}}
</div>
<div class="field">
<label for="reply-attachment">Attach files <span class="muted">(optional)</span></label>
<input type="file" id="reply-attachment" name="attachment" multiple data-max-files="{{ATTACH_MAX_FILES}}" data-max-bytes="{{ATTACH_MAX_BYTES}}" aria-describedby="reply-attachment-hint{{#ERR_ATTACHMENT}} reply-attachment-error{{/ERR_ATTACHMENT}}"{{#ERR_ATTACHMENT}} aria-invalid="true"{{/ERR_ATTACHMENT}}>
<p class="hint" id="reply-attachment-hint">{{ATTACH_LIMIT}}</p>
<ul class="file-list" hidden></ul>
{{#ERR_ATTACHMENT}}
<p class="field-error" id="reply-attachment-error">{{MSG}}</p>
{{/ERR_ATTACHMENT}}
</div>
<div class="actions">
<button type="submit" class="btn btn-primary">Send reply</button>
</div>
</form>
{{/CAN_REPLY}}
{{#CAN_NOTE}}
<form class="form card note-form" method="post" action="/tickets/{{ID}}/notes" enctype="multipart/form-data" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<div class="field">
<label for="note-body">Internal note <span class="muted">(agents and admins only; the customer never sees it)</span></label>
<textarea id="note-body" name="body" rows="3" maxlength="10000" required data-draft-key="note-{{ID}}"{{#ERR_NOTE}} aria-invalid="true" aria-describedby="note-body-error"{{/ERR_NOTE}}>
{{NOTE_DRAFT:pre_escape}}</textarea>
{{#ERR_NOTE}}
<p class="field-error" id="note-body-error">{{MSG}}</p>
{{/ERR_NOTE}}
</div>
<div class="field">
<label for="note-attachment">Attach files to the note <span class="muted">(optional; agents and admins only)</span></label>
<input type="file" id="note-attachment" name="attachment" multiple data-max-files="{{ATTACH_MAX_FILES}}" data-max-bytes="{{ATTACH_MAX_BYTES}}" aria-describedby="note-attachment-hint{{#ERR_NOTE_ATTACHMENT}} note-attachment-error{{/ERR_NOTE_ATTACHMENT}}"{{#ERR_NOTE_ATTACHMENT}} aria-invalid="true"{{/ERR_NOTE_ATTACHMENT}}>
<p class="hint" id="note-attachment-hint">{{ATTACH_LIMIT}}</p>
<ul class="file-list" hidden></ul>
{{#ERR_NOTE_ATTACHMENT}}
<p class="field-error" id="note-attachment-error">{{MSG}}</p>
{{/ERR_NOTE_ATTACHMENT}}
</div>
<div class="actions">
<button type="submit" class="btn">Add note</button>
</div>
</form>
{{/CAN_NOTE}}
{{#CLOSED_NOTICE}}
<p class="notice">This ticket is closed</p>
{{/CLOSED_NOTICE}}
</section>
<div class="ticket-actions">
{{#CAN_ASSIGN}}
<form class="inline-form" method="post" action="/tickets/{{ID}}/assign" data-confirm="Assign ticket #{{ID}} to the chosen agent?">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<label class="inline-label" for="assign-agent">Assign to</label>
<select id="assign-agent" name="agent_id" required>
<option value="">Choose an agent</option>
{{#AGENT_OPTION}}
<option value="{{AGENT_ID}}"{{#SELECTED}} selected{{/SELECTED}}>{{AGENT_NAME}}</option>
{{/AGENT_OPTION}}
</select>
<button type="submit" class="btn">Assign</button>
</form>
{{/CAN_ASSIGN}}
{{#CAN_PRIORITY}}
<form class="inline-form" method="post" action="/tickets/{{ID}}/priority">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<label class="inline-label" for="set-priority">Priority</label>
<select id="set-priority" name="priority" required>
{{#PRIO_OPTION}}
<option value="{{PRIO_NAME}}"{{#SELECTED}} selected{{/SELECTED}}>{{PRIO_NAME}}</option>
{{/PRIO_OPTION}}
</select>
<button type="submit" class="btn">Change priority</button>
</form>
{{/CAN_PRIORITY}}
{{#CAN_RESOLVE}}
<form class="inline-form" method="post" action="/tickets/{{ID}}/resolve">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn">Mark as resolved</button>
</form>
{{/CAN_RESOLVE}}
{{#CAN_REOPEN}}
<form class="inline-form" method="post" action="/tickets/{{ID}}/reopen">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn">Reopen ticket</button>
</form>
{{/CAN_REOPEN}}
{{#CAN_CLOSE}}
<form class="inline-form form-end" method="post" action="/tickets/{{ID}}/close" data-confirm="Close this ticket?">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-danger">Close ticket</button>
</form>
{{/CAN_CLOSE}}
</div>
{{#CAN_RATE}}
<section class="card" aria-labelledby="rate-h">
<h2 id="rate-h">Rate the help you got</h2>
<form class="form" method="post" action="/tickets/{{ID}}/rating" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<fieldset class="field"{{#ERR_SCORE}} aria-describedby="score-error"{{/ERR_SCORE}}>
<legend>Score (1 = poor, 5 = excellent)</legend>
<div class="choices">
<label><input type="radio" name="score" value="1" required> 1</label>
<label><input type="radio" name="score" value="2"> 2</label>
<label><input type="radio" name="score" value="3"> 3</label>
<label><input type="radio" name="score" value="4"> 4</label>
<label><input type="radio" name="score" value="5"> 5</label>
</div>
{{#ERR_SCORE}}
<p class="field-error" id="score-error">{{MSG}}</p>
{{/ERR_SCORE}}
</fieldset>
<div class="field">
<label for="rating-comment">Comment <span class="muted">(optional)</span></label>
<textarea id="rating-comment" name="comment" rows="3" maxlength="2000" data-draft-key="rating-{{ID}}"></textarea>
</div>
<div class="actions">
<button type="submit" class="btn btn-primary">Send rating</button>
</div>
</form>
</section>
{{/CAN_RATE}}
{{#RATING}}
<section class="card" aria-labelledby="rating-h">
<h2 id="rating-h">Rating</h2>
<p class="rating-score"><strong>{{SCORE}}</strong> out of 5 <span class="muted">· <time datetime="{{RATED_ISO}}" title="{{RATED_TEXT}}">{{RATED_AGO}}</time></span></p>
<div class="ticket-desc">{{COMMENT:pre_escape}}</div>
</section>
{{/RATING}}
</article>
