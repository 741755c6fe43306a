Subject: [#{{TICKET}}] Resolved: {{SUBJECT}}

Hello,

{{NAME}} marked ticket #{{TICKET}}, "{{SUBJECT}}", as resolved.
If you are satisfied, close it and rate the help you got. If not, just
reply and the ticket opens again:

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
