{{%AUTOESCAPE context="HTML"}}
<div class="medium stack">
<h1>API tokens</h1>
<p class="lead">A token lets a script, your shop or your CRM use the JSON API as you, with <code>Authorization: Bearer</code>. You may keep {{MAX_TOKENS}}. Revoke any you no longer use. Changing or resetting your password ends every token.</p>
{{#NEW_TOKEN}}
<section class="card" aria-labelledby="new-token-h" role="status">
<h2 id="new-token-h">Your new token “{{NEW_NAME}}”</h2>
<p>Copy it now: it is shown only this once and cannot be read again.</p>
<p><label for="new-token-secret">Token</label>
<input type="text" id="new-token-secret" class="mono" readonly value="{{SECRET}}" size="70"></p>
</section>
{{/NEW_TOKEN}}
<section class="card" aria-labelledby="tokens-h">
<h2 id="tokens-h">Your tokens</h2>
{{#NO_TOKENS}}
<p class="empty">You have no API tokens yet</p>
{{/NO_TOKENS}}
<div class="table-wrap">
<table class="table-cards" aria-labelledby="tokens-h">
<thead>
<tr>
<th scope="col">Name</th>
<th scope="col">Created</th>
<th scope="col">Last used</th>
<th scope="col"><span class="visually-hidden">Actions</span></th>
</tr>
</thead>
<tbody>
{{#TOKEN}}
<tr id="token-{{ID}}">
<td data-label="Name">{{NAME}}</td>
<td data-label="Created"><time datetime="{{CREATED_ISO}}">{{CREATED_TEXT}}</time></td>
<td data-label="Last used">{{#USED}}<time datetime="{{USED_ISO}}">{{USED_AGO}}</time>{{/USED}}{{#NEVER_USED}}Never{{/NEVER_USED}}</td>
<td data-label="Actions">
<form class="inline-form" method="post" action="/account/tokens/{{ID}}/revoke" data-confirm="Revoke the token &quot;{{NAME}}&quot;? What uses it stops working at once.">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small btn-danger">Revoke<span class="visually-hidden"> the token {{NAME}}</span></button>
</form>
</td>
</tr>
{{/TOKEN}}
</tbody>
</table>
</div>
</section>
<section class="card" aria-labelledby="create-token-h">
<h2 id="create-token-h">Create a token</h2>
<form class="form" method="post" action="/account/tokens" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<div class="field">
<label for="token-name">Name</label>
<input type="text" id="token-name" name="name" value="{{NAME_DRAFT}}" maxlength="64" required{{#ERR_NAME}} aria-invalid="true" aria-describedby="token-name-error"{{/ERR_NAME}}>
{{#ERR_NAME}}
<p class="field-error" id="token-name-error">{{MSG}}</p>
{{/ERR_NAME}}
</div>
<div class="actions">
<button type="submit" class="btn btn-primary">Create token</button>
</div>
</form>
</section>
</div>
