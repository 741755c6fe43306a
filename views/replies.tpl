{{%AUTOESCAPE context="HTML"}}
<div class="medium stack">
<h1>Saved replies</h1>
<p class="lead">Texts to insert into a ticket's reply box. <code>{customer_first_name}</code>, <code>{agent_first_name}</code> and <code>{ticket_number}</code> are filled in when you insert one. You keep {{COUNT}} of at most {{MAX}}.</p>
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<section aria-labelledby="shared-h">
<h2 id="shared-h">Shared replies</h2>
{{#NO_SHARED}}
<p class="empty">There are no shared replies yet{{#CAN_SHARE}}: save one below with "Shared with every agent" checked{{/CAN_SHARE}}</p>
{{/NO_SHARED}}
<ul class="reply-list">
{{#SHARED_REPLY}}
<li class="card reply-item" id="r{{REPLY_ID}}">
<h3>{{REPLY_TITLE}}</h3>
<div class="ticket-desc">{{REPLY_BODY:pre_escape}}</div>
{{#CAN_DELETE}}
<form class="inline-form" method="post" action="/replies/{{REPLY_ID}}/delete" data-confirm="Delete the shared reply &quot;{{REPLY_TITLE}}&quot; for every agent?">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small btn-danger">Delete<span class="visually-hidden"> {{REPLY_TITLE}}</span></button>
</form>
{{/CAN_DELETE}}
</li>
{{/SHARED_REPLY}}
</ul>
</section>
<section aria-labelledby="own-h">
<h2 id="own-h">Your replies</h2>
{{#NO_OWN}}
<p class="empty">You have no saved replies yet: save one below</p>
{{/NO_OWN}}
<ul class="reply-list">
{{#OWN_REPLY}}
<li class="card reply-item" id="r{{REPLY_ID}}">
<h3>{{REPLY_TITLE}}</h3>
<div class="ticket-desc">{{REPLY_BODY:pre_escape}}</div>
<form class="inline-form" method="post" action="/replies/{{REPLY_ID}}/delete" data-confirm="Delete the reply &quot;{{REPLY_TITLE}}&quot;?">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small btn-danger">Delete<span class="visually-hidden"> {{REPLY_TITLE}}</span></button>
</form>
</li>
{{/OWN_REPLY}}
</ul>
</section>
<section class="card" aria-labelledby="new-reply-h">
<h2 id="new-reply-h">Save a reply</h2>
<form class="form" method="post" action="/replies" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<div class="field">
<label for="reply-title">Title</label>
<input type="text" id="reply-title" name="title" value="{{TITLE}}" maxlength="100" required{{#ERR_TITLE}} aria-invalid="true" aria-describedby="reply-title-error"{{/ERR_TITLE}}>
{{#ERR_TITLE}}
<p class="field-error" id="reply-title-error">{{MSG}}</p>
{{/ERR_TITLE}}
</div>
<div class="field">
<label for="reply-text">Text</label>
<textarea id="reply-text" name="body" rows="6" maxlength="10000" required{{#ERR_BODY}} aria-invalid="true" aria-describedby="reply-text-error"{{/ERR_BODY}}>
{{BODY:pre_escape}}</textarea>
{{#ERR_BODY}}
<p class="field-error" id="reply-text-error">{{MSG}}</p>
{{/ERR_BODY}}
</div>
{{#CAN_SHARE}}
<div class="field">
<label class="check"><input type="checkbox" name="shared" value="1"> Shared with every agent</label>
</div>
{{/CAN_SHARE}}
<div class="actions">
<button type="submit" class="btn btn-primary">Save reply</button>
</div>
</form>
</section>
</div>
